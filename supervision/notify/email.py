"""E-mail: one plain-text message per alert event, through SMTP."""

from __future__ import annotations

import json
import smtplib
import ssl
import time
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from supervision.config import EmailReceiver
from supervision.notify.outcome import Outcome


def _section(event: dict[str, Any]) -> str:
    alert = event["alert"]
    return (
        f"{event['event']} at {event['at']}\n"
        f"alert {alert['id']}: {alert['kind']}, {alert['severity']}\n"
        f"{alert['summary']}\n"
        f"evidence:\n{json.dumps(alert['evidence'], ensure_ascii=False, indent=1)}\n"
    )


def message(receiver: EmailReceiver, delivery_id: int, payload: dict[str, Any]) -> EmailMessage:
    """One event, or a group of one mine's events (``payload["events"]``)."""
    mine = payload["mine"]
    events = payload.get("events") or [payload]
    msg = EmailMessage()
    msg["From"] = receiver.sender
    msg["To"] = ", ".join(receiver.to)
    if len(events) == 1:
        subject = f"[minegate] {payload['event']}: {mine['code']} {payload['alert']['summary']}"
    else:
        subject = f"[minegate] {len(events)} events: {mine['code']} {mine['name']}"
    msg["Subject"] = subject[:250]
    msg["Message-ID"] = make_msgid(f"minegate-delivery-{delivery_id}")
    msg["X-Minegate-Delivery"] = str(delivery_id)
    head = f"mine: {mine['code']} {mine['name']} ({mine['status']}), county {mine['county']}\n\n"
    msg.set_content(head + "\n".join(_section(e) for e in events))
    return msg


def send_email(receiver: EmailReceiver, delivery_id: int, payload: dict[str, Any]) -> Outcome:
    t0 = time.perf_counter()
    msg = message(receiver, delivery_id, payload)
    try:
        with smtplib.SMTP(
            receiver.smtp_host, receiver.smtp_port, timeout=receiver.timeout_s
        ) as smtp:
            if receiver.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if receiver.username:
                smtp.login(receiver.username, receiver.password or "")
            refused = smtp.send_message(msg)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = sorted({code for code, _ in exc.recipients.values()})
        return Outcome.failed(f"SMTP refused every recipient: {codes}", t0, status=codes[0],
                              permanent=all(c >= 500 for c in codes))  # fmt: skip
    except smtplib.SMTPResponseException as exc:
        text = (
            exc.smtp_error.decode(errors="replace")
            if isinstance(exc.smtp_error, bytes)
            else str(exc.smtp_error)
        )
        return Outcome.failed(f"SMTP {exc.smtp_code} {text}", t0, status=exc.smtp_code,
                              permanent=exc.smtp_code >= 500)  # fmt: skip
    except (smtplib.SMTPException, OSError) as exc:
        return Outcome.failed(f"{type(exc).__name__}: {exc}", t0)
    if refused:
        # some recipients took it: sent; the refused ones are named
        return Outcome(
            True, 250, f"refused: {', '.join(sorted(refused))}", (time.perf_counter() - t0) * 1000
        )
    return Outcome.sent(t0, 250)
