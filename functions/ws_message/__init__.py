"""Lambda function ws_message: see app.py."""
