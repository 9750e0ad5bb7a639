"""Gets a token from tokengw with Authlib's stock PrivateKeyJWT, unchanged.

Usage: python authlib_private_key_jwt.py TOKEN_URL CLIENT_ID PRIVATE_KEY_PEM_FILE
Prints the token response as JSON on success; exits non-zero otherwise.
"""
import json
import sys

from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT


def main():
    token_url, client_id, key_file = sys.argv[1:4]
    with open(key_file) as f:
        private_key = f.read()
    session = OAuth2Session(
        client_id,
        private_key,
        token_endpoint_auth_method=PrivateKeyJWT(token_url),
        scope="read",
    )
    token = session.fetch_token(token_url, grant_type="client_credentials")
    print(json.dumps(dict(token)))


if __name__ == "__main__":
    main()
