"""``maild report --html FILE``: one self-contained page (no script, no network): inline SVG
charts with their figures as tables beside them, a layout that reflows on a phone, and
print CSS (A4, no cut tables or charts)."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, StrictUndefined
from markupsafe import Markup

from maild.report import svg
from maild.report.labels import decimal, labels, percent

PAGE = """<!DOCTYPE html>
<html lang="{{ language }}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ t.title }} {{ report.period.from }} – {{ report.period.to }}</title>
<style>
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;margin:0 auto;padding:1rem;max-width:70rem;line-height:1.4}
h1{font-size:1.5rem;margin:.2rem 0}h2{font-size:1.25rem;border-bottom:2px solid #1f4e79;padding-bottom:.2rem;margin-top:2rem}
h3{font-size:1rem;margin:1rem 0 .3rem}
.meta{color:#555}
.kpis{display:grid;grid-template-columns:repeat(auto-fit,minmax(9rem,1fr));gap:.5rem;margin:.8rem 0}
.kpi{border:1px solid #ccd;border-radius:.4rem;padding:.5rem}
.kpi b{display:block;font-size:1.4rem;color:#1f4e79}
.kpi span{font-size:.85rem;color:#444}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(18rem,1fr));gap:1rem}
.chart svg{max-width:100%;height:auto;display:block}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{text-align:left;padding:.25rem .4rem;border-bottom:1px solid #ddd;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.note{color:#555;font-size:.85rem}
section{break-inside:avoid-page}
@media (max-width:30rem){body{padding:.5rem}.kpi b{font-size:1.2rem}}
@media print{@page{size:A4;margin:12mm}body{max-width:none;padding:0;font-size:10pt}
 h2{break-before:page}h2.first{break-before:auto}.chart,table,.kpis{break-inside:avoid}a{color:inherit}}
</style>
</head>
<body>
<h1>{{ t.title }}: {{ instance }}</h1>
<p class="meta">{{ t.period }} {{ report.period.from }} – {{ report.period.to }} ({{ report.period.timezone }}), {{ t.as_of }} {{ report.period.as_of[:16].replace('T', ' ') }}</p>
{% for part in parts %}
<section>
<h2{% if loop.first %} class="first"{% endif %}>{{ part.title }}{% if part.confidential %} ({{ t.confidential }}){% endif %}</h2>
{% set f = part.figures %}
<div class="kpis">
<div class="kpi"><b>{{ f.created }}</b><span>{{ t.created }}</span></div>
<div class="kpi"><b>{{ f.resolved }}</b><span>{{ t.resolved }}</span></div>
<div class="kpi"><b>{{ f.backlog }}</b><span>{{ t.backlog }}</span></div>
<div class="kpi"><b>{{ num(f.first_response_hours.median) }}</b><span>{{ t.first_response }} ({{ t.median }}; {{ t.p90 }} {{ num(f.first_response_hours.p90) }})</span></div>
<div class="kpi"><b>{{ num(f.resolution_hours.median) }}</b><span>{{ t.resolution }} ({{ t.median }}; {{ t.p90 }} {{ num(f.resolution_hours.p90) }})</span></div>
<div class="kpi"><b>{{ pct(f.sla_met_percent) }}</b><span>{{ t.sla_met }}</span></div>
</div>
<div class="grid">
<div><h3>{{ t.weeks }}</h3><div class="chart">{{ part.charts.weeks }}</div>
<div class="scroll"><table><tr><th>{{ t.week }}</th><th class="n">{{ t.created }}</th><th class="n">{{ t.resolved }}</th></tr>
{% for week, row in f.weeks.items() %}<tr><td>{{ week }}</td><td class="n">{{ row.created }}</td><td class="n">{{ row.resolved }}</td></tr>
{% endfor %}</table></div></div>
<div><h3>{{ t.categories }}</h3><div class="chart">{{ part.charts.categories }}</div>
<p class="note">{{ t.uncategorised }}: {{ f.uncategorised }}</p></div>
<div><h3>{{ t.rules }}</h3><div class="chart">{{ part.charts.rules }}</div>
<p class="note">{{ t.no_rule }}: {{ f.no_rule }}</p></div>
<div><h3>{{ t.channels }}</h3><div class="chart">{{ part.charts.channels }}</div></div>
</div>
<h3>{{ t.staff }}</h3>
<div class="scroll"><table><tr><th>{{ t.name }}</th><th class="n">{{ t.assigned }}</th><th class="n">{{ t.answered }}</th></tr>
{% for person, row in f.staff.items() %}<tr><td>{{ person }}</td><td class="n">{{ row.assigned }}</td><td class="n">{{ row.answered }}</td></tr>
{% endfor %}</table></div>
<h3>{{ t.oldest }}</h3>
{% if f.oldest_open %}<div class="scroll"><table><tr><th></th><th>{{ t.subject }}</th><th>{{ t.status }}</th><th>{{ t.assignee }}</th><th>{{ t.since }}</th></tr>
{% for item in f.oldest_open %}<tr><td>{{ item.tag }}</td><td>{{ item.subject }}</td><td>{{ item.status }}</td><td>{{ item.assignee or t.none }}</td><td>{{ item.created_at[:10] }}</td></tr>
{% endfor %}</table></div>{% else %}<p class="note">{{ t.none }}</p>{% endif %}
{% if f.hidden %}<p class="note">+ {{ f.hidden }} {{ t.hidden }}</p>{% endif %}
</section>
{% endfor %}
</body>
</html>
"""


def charts(figures: dict[str, Any], language: str) -> dict[str, Markup]:
    """The charts of one section, as markup to put into a page or a mail."""
    t = labels(language)
    return {
        "weeks": Markup(svg.week_bars(figures["weeks"], t["weeks"], (("created", t["created"]), ("resolved", t["resolved"])))),
        "categories": Markup(svg.bars(figures["categories"], t["categories"])),
        "rules": Markup(svg.bars(figures["rules"], t["rules"])),
        "channels": Markup(svg.bars(figures["channels"], t["channels"])),
    }


def sections(report: dict[str, Any], language: str) -> list[dict[str, Any]]:
    """Overall first (unless the report is one queue's), then each queue."""
    t = labels(language)
    parts = []
    if report.get("queue") is None:
        parts.append({"title": t["overall"], "confidential": False, "figures": report["overall"]})
    for part in report["queues"].values():
        parts.append({"title": part["name"], "confidential": part["confidential"], "figures": part})
    for part in parts:
        part["charts"] = charts(part["figures"], language)
    return parts


def page(report: dict[str, Any], instance: str, language: str) -> str:
    env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True)
    template = env.from_string(PAGE)
    return template.render(report=report, instance=instance, language=language, t=labels(language),
                           parts=sections(report, language),
                           num=lambda v: decimal(v, language), pct=lambda v: percent(v, language))
