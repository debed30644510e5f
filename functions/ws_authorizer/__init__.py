"""Lambda function ws_authorizer: see app.py."""
