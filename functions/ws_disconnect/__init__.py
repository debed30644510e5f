"""Lambda function ws_disconnect: see app.py."""
