"""A provider's id_token is a bearer credential: it never shows in a repr."""

from __future__ import annotations

from services.support.staff import StaffUser
from workers.console_oidc import SignedIn


def test_the_id_token_is_left_out_of_the_repr() -> None:
    signed_in = SignedIn(StaffUser("oidc:ada", ("agent",)), "eyJ.SECRET-ID-TOKEN.sig")
    assert "SECRET-ID-TOKEN" not in repr(signed_in) and "oidc:ada" in repr(signed_in)
    assert signed_in.id_token == "eyJ.SECRET-ID-TOKEN.sig"
