"""The issuer's HTML: plain server-rendered forms, no script. Every field has a
label (its accessible name: "User", "Code", "User code"), and every value that
reaches the page is escaped."""

from __future__ import annotations

from html import escape

STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;line-height:1.5}"
    "label{font-weight:600}input{font-size:1rem;padding:.3rem;width:100%;box-sizing:border-box}"
    "button{font-size:1rem;padding:.4rem 1.2rem;margin-right:.5rem}"
    "[role=alert]{border-left:4px solid #b00;padding-left:.6rem}"
)


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)} · PIM development issuer</title>\n<style>{STYLE}</style>\n</head>\n"
        f"<body>\n<main>\n<h1>{escape(title)}</h1>\n{body}</main>\n</body>\n</html>\n"
    )


def _alert(error: str | None) -> str:
    return f'<p role="alert" id="error">{escape(error)}</p>\n' if error else ""


def _field(name: str, label: str, *, value: str = "", error: bool = False, **attributes: str) -> str:
    described = ' aria-describedby="error" aria-invalid="true"' if error else ""
    extra = "".join(f' {key.replace("_", "-")}="{escape(val)}"' for key, val in attributes.items())
    return (
        f'<p><label for="{name}">{escape(label)}</label><br>\n'
        f'<input id="{name}" name="{name}" type="text" value="{escape(value)}" required{described}{extra}></p>\n'
    )


def _user_and_code(user: str, error: bool = False) -> str:
    return _field(
        "user", "User", value=user, error=error, autocomplete="username", autocapitalize="none", spellcheck="false"
    ) + _field(
        "code",
        "Code",
        error=error,
        autocomplete="one-time-code",
        inputmode="numeric",
        pattern="[0-9]{6}",
        maxlength="6",
    )


def _asks(client_name: str, scope: str) -> str:
    scopes = ", ".join(scope.split()) or "no scope"
    return f"<p><strong>{escape(client_name)}</strong> asks to act as you ({escape(scopes)}).</p>\n"


def sign_in_page(
    *, action: str, client_name: str, scope: str, authorization_request: str, user: str = "", error: str | None = None
) -> str:
    """The authorization endpoint's form: the request travels in one hidden field
    and is validated again, in full, when the form comes back."""
    body = (
        _asks(client_name, scope)
        + "<p>Sign in with your user name and the current code of your authenticator app.</p>\n"
        + _alert(error)
        + f'<form method="post" action="{escape(action)}">\n'
        + f'<input type="hidden" name="authorization_request" value="{escape(authorization_request)}">\n'
        + _user_and_code(user, bool(error))
        + '<p><button type="submit">Sign in</button></p>\n</form>\n'
    )
    return _page("Sign in", body)


def device_page(
    *,
    action: str,
    user_code: str = "",
    user: str = "",
    asking: tuple[str, str] | None = None,
    error: str | None = None,
    user_code_error: bool = False,
) -> str:
    """The device verification page (RFC 8628): the code the device shows, then
    the user's sign-in. `asking`: (client name, scope), when the user code is known.
    `user_code_error`: the error is about the user code, not the sign-in."""
    body = (
        (_asks(*asking) if asking else "")
        + "<p>Enter the code your device shows, then sign in. Approve only a request you started yourself.</p>\n"
        + _alert(error)
        + f'<form method="post" action="{escape(action)}">\n'
        + _field(
            "user_code",
            "User code",
            value=user_code,
            error=bool(error) and user_code_error,
            autocomplete="off",
            autocapitalize="characters",
            spellcheck="false",
        )
        + _user_and_code(user, bool(error) and not user_code_error)
        + '<p><button type="submit" name="decision" value="approve">Sign in</button>\n'
        + '<button type="submit" name="decision" value="deny" formnovalidate>Deny</button></p>\n</form>\n'
    )
    return _page("Sign in on your device", body)


def message_page(title: str, message: str) -> str:
    return _page(title, f"<p>{escape(message)}</p>\n")
