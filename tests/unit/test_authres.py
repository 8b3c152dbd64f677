"""Staff proof by Authentication-Results: only the topmost header of a trusted server counts."""

from __future__ import annotations

import pytest

from maild.core.authres import proves_sender

TRUSTED = frozenset({"mx.liitto.fi"})
PASS = "mx.liitto.fi; spf=pass smtp.mailfrom=liitto.fi; dkim=pass header.d=liitto.fi; dmarc=pass header.from=liitto.fi"


@pytest.mark.parametrize(
    ("headers", "proven"),
    [
        ((PASS,), True),
        (("mx.liitto.fi; dmarc=pass (p=reject) header.from=liitto.fi",), True),
        (("mx.liitto.fi; dkim=pass header.i=@liitto.fi; dmarc=none",), True),
        (("mx.liitto.fi; dkim=pass header.d=mail.liitto.fi",), False),  # signer more specific than From
        (("mx.liitto.fi; dkim=pass header.d=evil.example; dmarc=fail header.from=liitto.fi",), False),
        (("mx.liitto.fi; dmarc=fail header.from=liitto.fi", PASS), False),  # a forged pass below the real one
        (("evil.example; dmarc=pass header.from=liitto.fi",), False),  # untrusted server
        (("evil.example; dmarc=pass header.from=liitto.fi", "mx.liitto.fi; dmarc=fail header.from=liitto.fi"), False),
        ((), False),
    ],
)
def test_proves_sender(headers: tuple[str, ...], proven: bool) -> None:
    assert proves_sender(headers, TRUSTED, "liitto.fi") is proven
