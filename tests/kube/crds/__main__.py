"""`python -m tests.kube.crds [KUBEVIRT_VERSION]`: regenerate the committed CRDs."""

import sys

from tests.kube.crds import generate

generate(sys.argv[1] if len(sys.argv) > 1 else None)
