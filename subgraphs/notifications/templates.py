"""Message templates (Jinja2), English, one set per notification kind: `subject` (one line), `summary` (the in-app
body and SMS/push text), `text` (plain-text email) and `html` (HTML email, autoescaped: order lines, names and
titles come from users and sellers). Kept in code, not files, so they ship with the package as they are."""
from __future__ import annotations

import dataclasses
from typing import Any

import jinja2

from subgraphs.notifications.models import Kind

_LAYOUT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ subject }}</title></head>
<body style="font-family: sans-serif; color: #222; max-width: 600px; margin: auto">
<h1 style="font-size: 20px">{% block heading %}{% endblock %}</h1>
{% block content %}{% endblock %}
<hr><p style="font-size: 12px; color: #777">NexusCart{% if unsubscribe_url %} ·
<a href="{{ unsubscribe_url }}">Unsubscribe from these emails</a>{% endif %}</p>
</body></html>
"""

_LINES_HTML = """{% if lines %}<table style="border-collapse: collapse; width: 100%">
<tr><th align="left">Item</th><th align="right">Qty</th><th align="right">Price</th></tr>
{% for line in lines %}<tr><td>{{ line.name }} <small>({{ line.sku }})</small></td>
<td align="right">{{ line.quantity }}</td>
<td align="right">{{ line.unit_price }} {{ currency }}</td></tr>
{% endfor %}</table>
<p>Subtotal: {{ subtotal }} {{ currency }}{% if discount and discount != "0.00" %}
<br>Discount: -{{ discount }} {{ currency }}{% endif %}
<br><strong>Total: {{ total }} {{ currency }}</strong></p>{% endif %}"""

_LINES_TEXT = """{% if lines %}
{% for line in lines %}  {{ line.quantity }} x {{ line.name }} ({{ line.sku }})  {{ line.unit_price }} {{ currency }}
{% endfor %}
Subtotal: {{ subtotal }} {{ currency }}{% if discount and discount != "0.00" %}
Discount: -{{ discount }} {{ currency }}{% endif %}
Total: {{ total }} {{ currency }}
{% endif %}"""

_SOURCES: dict[str, str] = {"layout.html": _LAYOUT, "lines.html": _LINES_HTML, "lines.txt": _LINES_TEXT}


def _kind(kind: Kind, *, subject: str, summary: str, text: str, html: str) -> None:
    name = kind.value.lower()
    _SOURCES[f"{name}.subject.txt"] = subject
    _SOURCES[f"{name}.summary.txt"] = summary
    _SOURCES[f"{name}.txt"] = text
    _SOURCES[f"{name}.html"] = ('{% extends "layout.html" %}{% block heading %}' + subject
                                + '{% endblock %}{% block content %}' + html + '{% endblock %}')


_ORDER_TEXT_FOOTER = "\nSee your order: {{ order_url }}\n"

_kind(Kind.ORDER_PLACED,
      subject="We received your order {{ number }}",
      summary="Order {{ number }} is placed: {{ total }} {{ currency }}. We will tell you when it is paid.",
      text="Thank you for your order {{ number }}.\n{% include 'lines.txt' %}" + _ORDER_TEXT_FOOTER,
      html="<p>Thank you for your order <strong>{{ number }}</strong>.</p>{% include 'lines.html' %}"
           '<p><a href="{{ order_url }}">See your order</a></p>')
_kind(Kind.ORDER_PAID,
      subject="Payment received for order {{ number }}",
      summary="Order {{ number }} is paid ({{ total }} {{ currency }}). We are preparing it.",
      text="We received your payment for order {{ number }}; we are preparing it.\n{% include 'lines.txt' %}"
           + _ORDER_TEXT_FOOTER,
      html="<p>We received your payment for order <strong>{{ number }}</strong>; we are preparing it.</p>"
           "{% include 'lines.html' %}<p><a href=\"{{ order_url }}\">See your order</a></p>")
_kind(Kind.ORDER_SHIPPED,
      subject="Your order {{ number }} is on its way",
      summary="Order {{ number }} has shipped.{% if tracking_url %} Track it: {{ tracking_url }}{% endif %}",
      text="Your order {{ number }} has shipped.\n{% if tracking_number %}Tracking number: {{ tracking_number }}\n"
           "{% endif %}{% if tracking_url %}Track it: {{ tracking_url }}\n{% endif %}"
           "{% include 'lines.txt' %}" + _ORDER_TEXT_FOOTER,
      html="<p>Your order <strong>{{ number }}</strong> has shipped.</p>{% if tracking_number %}"
           "<p>Tracking number: {{ tracking_number }}</p>{% endif %}{% if tracking_url %}"
           '<p><a href="{{ tracking_url }}">Track your parcel</a></p>{% endif %}{% include \'lines.html\' %}')
_kind(Kind.ORDER_DELIVERED,
      subject="Your order {{ number }} was delivered",
      summary="Order {{ number }} was delivered. Enjoy!",
      text="Your order {{ number }} was delivered. We hope you enjoy it; you can review what you bought.\n"
           + _ORDER_TEXT_FOOTER,
      html="<p>Your order <strong>{{ number }}</strong> was delivered. We hope you enjoy it; you can review what "
           'you bought.</p><p><a href="{{ order_url }}">See your order</a></p>')
_kind(Kind.ORDER_CANCELLED,
      subject="Your order {{ number }} was cancelled",
      summary="Order {{ number }} was cancelled: {{ reason_text }}.",
      text="Your order {{ number }} was cancelled: {{ reason_text }}.\n{% if was_paid %}Your payment will be "
           "refunded.\n{% endif %}{% include 'lines.txt' %}" + _ORDER_TEXT_FOOTER,
      html="<p>Your order <strong>{{ number }}</strong> was cancelled: {{ reason_text }}.</p>{% if was_paid %}"
           "<p>Your payment will be refunded.</p>{% endif %}{% include 'lines.html' %}")
_kind(Kind.PAYMENT_FAILED,
      subject="Payment for order {{ number }} failed",
      summary="The payment for order {{ number }} ({{ total }} {{ currency }}) failed: {{ reason }}.",
      text="The payment for order {{ number }} ({{ total }} {{ currency }}) failed: {{ reason }}.\n"
           "Please try again with another payment method.\n" + _ORDER_TEXT_FOOTER,
      html="<p>The payment for order <strong>{{ number }}</strong> ({{ total }} {{ currency }}) failed: "
           "{{ reason }}.</p><p>Please try again with another payment method.</p>"
           '<p><a href="{{ order_url }}">See your order</a></p>')
_kind(Kind.REFUND_ISSUED,
      subject="Refund of {{ amount }} {{ currency }} for order {{ number }}",
      summary="We refunded {{ amount }} {{ currency }} for order {{ number }}"
              "{% if fully_refunded %} (the whole order){% endif %}.",
      text="We refunded {{ amount }} {{ currency }} for order {{ number }}{% if fully_refunded %} (the whole "
           "order){% endif %}. It can take a few days to appear on your statement.\n" + _ORDER_TEXT_FOOTER,
      html="<p>We refunded <strong>{{ amount }} {{ currency }}</strong> for order <strong>{{ number }}</strong>"
           "{% if fully_refunded %} (the whole order){% endif %}. It can take a few days to appear on your "
           "statement.</p>")
_kind(Kind.REVIEW_APPROVED,
      subject="{% if for_seller %}A new review of your product{% else %}Your review is live{% endif %}",
      summary="{% if for_seller %}A {{ rating }}-star review of your product was published: \"{{ title }}\"."
              "{% else %}Your review \"{{ title }}\" ({{ rating }} stars) is now public.{% endif %}",
      text="{% if for_seller %}A {{ rating }}-star review of your product was published: \"{{ title }}\".\n"
           "{% else %}Your review \"{{ title }}\" ({{ rating }} stars) is now public. Thank you!\n{% endif %}",
      html="{% if for_seller %}<p>A {{ rating }}-star review of your product was published: "
           "<q>{{ title }}</q>.</p>{% else %}<p>Your review <q>{{ title }}</q> ({{ rating }} stars) is now public. "
           "Thank you!</p>{% endif %}")
_kind(Kind.LOW_STOCK,
      subject="Low stock: variant {{ variant_id }} has {{ available }} left",
      summary="Variant {{ variant_id }} is down to {{ available }} available (threshold {{ threshold }}).",
      text="Variant {{ variant_id }} is down to {{ available }} available units (threshold {{ threshold }}).\n"
           "Restock it with adjustStock.\n",
      html="<p>Variant <strong>{{ variant_id }}</strong> is down to <strong>{{ available }}</strong> available "
           "units (threshold {{ threshold }}).</p><p>Restock it with <code>adjustStock</code>.</p>")
_kind(Kind.FLASH_SALE_STARTING,
      subject="The flash sale you asked about starts {{ starts_at_text }}",
      summary="Flash sale {{ sale_id }} starts {{ starts_at_text }}. Be quick: stock is limited.",
      text="The flash sale {{ sale_id }} you asked to be reminded of starts {{ starts_at_text }} and ends "
           "{{ ends_at_text }}. Stock is limited.\n{% if unsubscribe_url %}\nUnsubscribe from these emails: "
           "{{ unsubscribe_url }}\n{% endif %}",
      html="<p>The flash sale <strong>{{ sale_id }}</strong> you asked to be reminded of starts "
           "<strong>{{ starts_at_text }}</strong> and ends {{ ends_at_text }}. Stock is limited.</p>")

_environment = jinja2.Environment(
    loader=jinja2.DictLoader(_SOURCES),
    autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False, default=False),
    undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


@dataclasses.dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    summary: str
    text: str
    html: str


def render(kind: Kind, context: dict[str, Any]) -> Rendered:
    """Every template of `kind` with `context` (a missing variable is an error: StrictUndefined). Optional values
    are passed as None by the caller."""
    name = kind.value.lower()
    subject = _environment.get_template(f"{name}.subject.txt").render(context).strip()
    values = {"subject": subject, "unsubscribe_url": None, **context}
    return Rendered(subject=" ".join(subject.split()),
                    summary=" ".join(_environment.get_template(f"{name}.summary.txt").render(values).split()),
                    text=_environment.get_template(f"{name}.txt").render(values),
                    html=_environment.get_template(f"{name}.html").render(values))


def kinds_with_templates() -> list[Kind]:
    return [k for k in Kind if f"{k.value.lower()}.html" in _SOURCES]
