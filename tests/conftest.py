"""Suite-wide settings: the tests never touch the user's own wheelstream state."""

from __future__ import annotations

import os
import tempfile

# The ownership key (wheelstream.installer._ownership) lives in the user's state directory; the suite and the
# processes it starts share one of their own, so a kill test's rerun verifies what the killed run signed.
os.environ.setdefault("WHEELSTREAM_STATE_DIR", tempfile.mkdtemp(prefix="wheelstream-test-state-"))
