"""Lambda function gateway_http: see app.py."""
