"""The HTTP edge: AWS Lambda's REST API (and Lamina's own `/_lamina/` endpoints) on one port.

`app.LambdaApi` is the ASGI application: it reads a request, verifies its SigV4 signature
(`sigv4`), routes, parses and validates it from botocore's model (`model`), calls one
handler (`handlers`) and renders the result or AWS's error. Nothing below imports this package.
"""
