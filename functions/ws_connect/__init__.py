"""Lambda function ws_connect: see app.py."""
