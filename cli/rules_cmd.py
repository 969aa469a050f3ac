"""cli.rules_cmd: `blueprint rules`, the screening policy in force as a table a planner can read, and JSON."""

from __future__ import annotations

import sys
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from cli.common import domain_errors, emit, stderr

RULE_ZH = {"forbidden": "禁止", "conditional": "有条件", "allowed": "允许"}
RULE_STYLE = {"forbidden": "bold red", "conditional": "yellow", "allowed": "green"}


def register(app: typer.Typer) -> None:
    """Add `rules` to the root app."""
    app.command("rules")(rules_command)


def policy_document(rules: Any, catalogue: Any) -> dict[str, Any]:
    """The whole policy as one JSON document: version, project types (both levels), kinds, rules."""
    kinds = [{"key": k.key, "name_zh": k.name_zh, "name_en": k.name_en}
             for k in catalogue.values() if k.group != "boundary"]
    kinds += [{"key": p.key, "name_zh": p.name_zh, "name_en": p.name_en} for p in rules.pseudo_kinds.values()]
    types = [{"key": t.key, "name_zh": t.name_zh, "name_en": t.name_en, "group": t.group_key,
              "is_group": t.is_group, "urban_construction": t.urban_construction}
             for t in rules.project_types.values()]
    return {"rules": rules.meta.as_dict(), "source": rules.source, "project_types": types, "kinds": kinds,
            "requirements": [r.as_dict() for r in rules.requirements.values()],
            "policy": rules.policy([k["key"] for k in kinds])}


def _ordered_types(rules: Any) -> list[Any]:
    """Each group followed by its finer types."""
    out = []
    for group in rules.groups:
        out.append(group)
        out.extend(rules.members(group.key))
    return out


def _type_label(ptype: Any) -> str:
    return f"{ptype.name_zh}" if ptype.is_group else f"  └ {ptype.name_zh}"


def render(console: Console, rules: Any, doc: dict[str, Any], only: set[str] | None = None) -> None:
    """Print the policy: a matrix (project type × control layer), then each forbidden or conditional rule
    with its citation and requirements — for the groups, and for the finer types where they differ."""
    meta = rules.meta
    console.print(f"[bold]筛查规则 {meta.title_zh or ''}[/bold]", highlight=False)
    console.print(f"规则版本 {meta.version}　生效日期 {meta.effective_date or '—'}　来源 {rules.source}",
                  highlight=False)
    kinds = doc["kinds"]
    types = [t for t in _ordered_types(rules) if only is None or t.key in only]
    matrix = Table(title="项目类型 × 管控图层 Project type × control layer", show_lines=False)
    matrix.add_column("项目类型 Project type", no_wrap=True)
    for kind in kinds:
        matrix.add_column(kind["name_zh"], justify="center")
    for ptype in types:
        cells = []
        for kind in kinds:
            outcome = rules.rule(kind["key"], ptype.key).outcome
            cells.append(f"[{RULE_STYLE[outcome]}]{RULE_ZH[outcome]}[/]")
        matrix.add_row(_type_label(ptype), *cells, style="bold" if ptype.is_group else None)
    console.print(matrix)

    detail = Table(title="规则、法规依据与申请要件 Rules, regulations and what the applicant must provide",
                   show_lines=True)
    for title, ratio in (("项目类型", 2), ("管控图层", 2), ("规则", 1), ("法规依据（文号、条款）", 5),
                         ("须提供或取得", 6)):
        detail.add_column(title, overflow="fold", ratio=ratio)
    names = {k["key"]: k["name_zh"] for k in kinds}
    for ptype in types:
        for kind in kinds:
            rule = rules.rule(kind["key"], ptype.key)
            if rule.outcome == "allowed":
                continue  # the matrix shows it; nothing restricts it
            if not ptype.is_group and rule == _as_type(rules.rule(kind["key"], ptype.group_key), ptype.key):
                continue  # the same as its group's rule, listed there
            reg = rule.regulation
            cite = reg.citation_zh or reg.zh
            needs = "\n".join(f"{i}. {n.zh}" for i, n in enumerate(rule.requirements, start=1)) or "—"
            detail.add_row(_type_label(ptype).strip(" └"), names[kind["key"]],
                           f"[{RULE_STYLE[rule.outcome]}]{RULE_ZH[rule.outcome]}[/]", cite, needs)
    console.print(detail)
    unverified = sorted({r["regulation"]["citation_zh"] for r in doc["policy"]
                         if r["regulation"].get("verified") is False})
    if unverified:
        console.print("注：标“条款待核”的条款序号未与公布原文逐条核对，引用前请核对。", highlight=False)


def _as_type(rule: Any, key: str) -> Any:
    from dataclasses import replace

    return replace(rule, project_type=key)


def rules_command(
    table: bool = typer.Option(False, "--table", help="print the readable table on stdout instead of JSON"),
    project_type: list[str] = typer.Option([], "--project-type", "-t",
                                           help="only these project types (a group brings its finer types)"),
) -> None:
    """The screening policy in force 筛查规则: JSON on stdout, the table on stderr (stdout with --table)."""
    from checks.rules import load_rules
    from layers.catalogue import load_catalogue
    from runtime.settings import get_settings

    with domain_errors():
        settings = get_settings()
        catalogue = load_catalogue(settings.catalogue_file)
        rules = load_rules(settings.rules_file, catalogue)
        only: set[str] | None = None
        if project_type:
            only = set()
            for key in project_type:
                ptype = rules.require_project_type(key)
                only.add(ptype.key)
                only.update(m.key for m in rules.members(ptype.key))
    doc = policy_document(rules, catalogue)
    if only is not None:
        doc["project_types"] = [t for t in doc["project_types"] if t["key"] in only]
        doc["policy"] = [r for r in doc["policy"] if r["project_type"] in only]
    if table:
        render(Console(file=sys.stdout, width=None if sys.stdout.isatty() else 200), rules, doc, only)
        return
    render(stderr, rules, doc, only)
    emit(doc)
