"""PyJWT side of the interop tests (tests/it/interop.rs drives it).

  interop.py verify ALG TOKEN KEYFILE pem|jwk|secret   -> prints the verified claims as JSON
  interop.py make ALG DIR                              -> writes a key pair and a PyJWT token
"""
import base64
import json
import os
import sys
import time

import jwt
from jwt.algorithms import get_default_algorithms
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

AUD = "interop"


def verify(alg, token, path, form):
    with open(path, "rb") as f:
        data = f.read()
    if form == "jwk":
        key = jwt.PyJWK(json.loads(data), algorithm=alg).key
    elif form == "pem":
        key = serialization.load_pem_public_key(data)
    else:  # a raw HMAC secret
        key = data
    claims = jwt.decode(token, key=key, algorithms=[alg], audience=AUD, options={"require": ["exp", "iat"]})
    print(json.dumps(claims, sort_keys=True))


def self_signed(private):
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "jwtgate interop")])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
               .public_key(private.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1)))
    digest = None if isinstance(private, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(private, digest)


def make(alg, out):
    if alg.startswith("HS"):
        secret = os.urandom(int(alg[2:]) // 8)
        private = secret
        with open(os.path.join(out, "secret.b64"), "w") as f:
            f.write(base64.b64encode(secret).decode())
        jwk = {"kty": "oct", "k": base64.urlsafe_b64encode(secret).rstrip(b"=").decode(), "alg": alg}
    else:
        if alg[:2] in ("RS", "PS"):
            private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif alg == "EdDSA":
            private = ed25519.Ed25519PrivateKey.generate()
        else:
            curve = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1(), "ES512": ec.SECP521R1()}[alg]
            private = ec.generate_private_key(curve)
        public = private.public_key()
        with open(os.path.join(out, "pub.pem"), "wb") as f:
            f.write(public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        with open(os.path.join(out, "priv.pem"), "wb") as f:
            f.write(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
        if alg != "EdDSA":
            # PKCS#1 ("RSA PRIVATE KEY") for RSA, SEC1 ("EC PRIVATE KEY") for EC.
            with open(os.path.join(out, "trad.pem"), "wb") as f:
                f.write(private.private_bytes(serialization.Encoding.PEM,
                                              serialization.PrivateFormat.TraditionalOpenSSL,
                                              serialization.NoEncryption()))
        if alg[:2] in ("RS", "PS"):
            with open(os.path.join(out, "pub.pkcs1.pem"), "wb") as f:
                f.write(public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1))
        with open(os.path.join(out, "cert.pem"), "wb") as f:
            f.write(self_signed(private).public_bytes(serialization.Encoding.PEM))
        jwk = json.loads(get_default_algorithms()[alg].to_jwk(public))
    with open(os.path.join(out, "pub.jwk"), "w") as f:
        json.dump(jwk, f)
    now = int(time.time())
    claims = {"sub": "py", "aud": AUD, "iat": now, "exp": now + 600, "roles": ["api"]}
    with open(os.path.join(out, "token"), "w") as f:
        f.write(jwt.encode(claims, private, algorithm=alg))


if __name__ == "__main__":
    if sys.argv[1] == "verify":
        verify(*sys.argv[2:6])
    elif sys.argv[1] == "make":
        make(sys.argv[2], sys.argv[3])
    else:
        sys.exit("usage: interop.py verify|make ...")
