"""Lambda function witness_publisher: see app.py."""
