"""Many companies in one service (issue 12), the pure parts: which company a call belongs to (by
the number dialled, or by the employee whose phone forwarded it), every company's employees and
teams as one roster (for what follows phones and team queues service-wide), what a company file
may not take from another company (ids, extensions, numbers and team queue names are unique
across the service), and which company a `vaihde config … --company ID` command acts on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from vaihde.company.dials import same_number
from vaihde.company.schema import MAIN_COMPANY, CompanyConfig, Employee, Team
from vaihde.config.source import ConfigError, Node, load_yaml, parse_yaml

# Forwarding numbers are matched like `same_number` (national 040… against +35840…): indexed by
# their last digits, compared exactly among the few that share them.
_TAIL = 7


def _digits(number: str) -> str:
    return number.strip().lstrip("+")


@dataclass(frozen=True)
class CompanyIndex:
    """Where a call goes among the live companies (the first is where unknown numbers go)."""

    order: tuple[str, ...]
    by_number: Mapping[str, str]  # dialled number (digits) → company id
    by_extension: Mapping[str, str]  # employee extension → company id
    _by_tail: Mapping[str, tuple[tuple[str, str], ...]] = field(repr=False)
    # No two companies claimed one number or extension (apply refuses that): then one
    # company's part can be swapped without looking at the others (`replaced`).
    _clean: bool = field(default=True, repr=False, compare=False)

    @classmethod
    def build(cls, companies: Mapping[str, CompanyConfig]) -> CompanyIndex:
        by_number: dict[str, str] = {}
        by_extension: dict[str, str] = {}
        tails: dict[str, list[tuple[str, str]]] = {}
        clean = True
        for cid, config in companies.items():
            numbers, extensions, owned = _company_keys(config)
            for number in numbers:
                clean &= by_number.setdefault(number, cid) == cid
            for extension in extensions:
                clean &= by_extension.setdefault(extension, cid) == cid
            for digits in owned:
                tails.setdefault(digits[-_TAIL:], []).append((digits, cid))
        return cls(tuple(companies), by_number, by_extension,
                   {k: tuple(v) for k, v in tails.items()}, clean)

    def replaced(
        self, companies: Mapping[str, CompanyConfig], old: CompanyConfig | None,
        new: CompanyConfig,
    ) -> CompanyIndex:
        """This index with company `new.id` changed from `old` to `new` (`companies`: every
        company, `new` among them): the same as `build(companies)`, at the cost of the one
        company. Falls back to `build` when the companies or their order changed or two
        companies claim one number."""
        cid = new.id
        if not self._clean or old is None or tuple(companies) != self.order:
            return CompanyIndex.build(companies)
        by_number, by_extension = dict(self.by_number), dict(self.by_extension)
        tails = dict(self._by_tail)
        old_numbers, old_extensions, old_owned = _company_keys(old)
        for mapping, keys in ((by_number, old_numbers), (by_extension, old_extensions)):
            for key in keys:
                if mapping.get(key) == cid:
                    del mapping[key]
        new_numbers, new_extensions, new_owned = _company_keys(new)
        for mapping, keys in ((by_number, new_numbers), (by_extension, new_extensions)):
            for key in keys:
                if mapping.setdefault(key, cid) != cid:
                    return CompanyIndex.build(companies)
        # Numbers sharing their last digits stay in company order, as `build` leaves them.
        position = {c: i for i, c in enumerate(self.order)}
        added: dict[str, list[tuple[str, str]]] = {}
        for digits in new_owned:
            added.setdefault(digits[-_TAIL:], []).append((digits, cid))
        for tail in {d[-_TAIL:] for d in old_owned} | set(added):
            bucket = [e for e in tails.get(tail, ()) if e[1] != cid] + added.get(tail, [])
            if bucket:
                bucket.sort(key=lambda e: position[e[1]])
                tails[tail] = tuple(bucket)
            else:
                tails.pop(tail, None)
        return CompanyIndex(self.order, by_number, by_extension, tails, True)

    @property
    def first(self) -> str:
        return self.order[0] if self.order else MAIN_COMPANY

    def by_forwarder(self, number: str) -> str | None:
        """The company of the employee whose mobile, direct number or extension this is."""
        digits = _digits(number)
        if not digits:
            return None
        for candidate, cid in self._by_tail.get(digits[-_TAIL:], ()):
            if same_number(candidate, digits):
                return cid
        return self.by_extension.get(digits)

    def company_for(self, dialled: str, forwarded_from: str = "") -> str:
        """The call's company: a forwarded call's is the forwarding employee's; else the
        dialled number's; else (unknown) the first company."""
        if forwarded_from:
            found = self.by_forwarder(forwarded_from)
            if found is not None:
                return found
        return self.by_number.get(_digits(dialled), self.first) if dialled else self.first


def _company_keys(config: CompanyConfig) -> tuple[list[str], list[str], list[str]]:
    """A company's numbers, extensions and forwarding numbers (digits), in `build`'s order."""
    numbers = [n.digits for n in config.numbers.values()]
    extensions: list[str] = []
    owned: list[str] = []
    for employee in config.employees.values():
        if employee.extension:
            extensions.append(employee.extension)
        owned.extend(_digits(number) for number in (
            *employee.direct, *(d.address for d in employee.devices if d.kind == "mobile")))
    return numbers, extensions, owned


@dataclass(frozen=True)
class Roster:
    """Every live company's employees and teams as one (ids are unique across the service), for
    the parts that serve all companies at once: phones' states, team queues, message texts,
    time zones. Built once per change of any company; lookups are dict reads."""

    employees: Mapping[str, Employee]
    teams: Mapping[str, Team]
    companies: Mapping[str, CompanyConfig]
    _company_of: Mapping[str, str] = field(repr=False)  # employee or team id → company id
    _by_device: Mapping[str, str] = field(repr=False)  # desk phone / softphone → employee id
    # No id or device in two companies: one company's part can be swapped alone (`replaced`).
    _clean: bool = field(default=True, repr=False, compare=False)

    @classmethod
    def build(cls, companies: Mapping[str, CompanyConfig]) -> Roster:
        employees: dict[str, Employee] = {}
        teams: dict[str, Team] = {}
        company_of: dict[str, str] = {}
        by_device: dict[str, str] = {}
        clean = True
        for cid, config in companies.items():
            for eid, employee in config.employees.items():
                clean &= employees.setdefault(eid, employee) is employee
                clean &= company_of.setdefault(eid, cid) == cid
                for device in employee.devices:
                    # Mobiles cannot be told apart from any caller (as CompanyConfig's index).
                    if device.kind != "mobile":
                        clean &= by_device.setdefault(device.address, eid) == eid
            for tid, team in config.teams.items():
                clean &= teams.setdefault(tid, team) is team
                clean &= company_of.setdefault(tid, cid) == cid
        return cls(employees, teams, dict(companies), company_of, by_device, clean)

    def replaced(
        self, companies: Mapping[str, CompanyConfig], old: CompanyConfig | None,
        new: CompanyConfig,
    ) -> Roster:
        """This roster with company `new.id` changed from `old` to `new`: the same as
        `build(companies)` at the cost of the one company (`build` itself when the companies
        or their order changed, or two companies claim one id or phone)."""
        cid = new.id
        if not self._clean or old is None or list(companies) != list(self.companies):
            return Roster.build(companies)
        employees, teams = dict(self.employees), dict(self.teams)
        company_of, by_device = dict(self._company_of), dict(self._by_device)
        for eid, employee in old.employees.items():
            if company_of.get(eid) == cid:
                del employees[eid], company_of[eid]
            for device in employee.devices:
                if device.kind != "mobile" and by_device.get(device.address) == eid:
                    del by_device[device.address]
        for tid in old.teams:
            if company_of.get(tid) == cid:
                del teams[tid], company_of[tid]
        for eid, employee in new.employees.items():
            if eid in employees or eid in company_of:
                return Roster.build(companies)
            employees[eid], company_of[eid] = employee, cid
            for device in employee.devices:
                if device.kind != "mobile":
                    if by_device.setdefault(device.address, eid) != eid:
                        return Roster.build(companies)
        for tid, team in new.teams.items():
            if tid in teams or tid in company_of:
                return Roster.build(companies)
            teams[tid], company_of[tid] = team, cid
        return Roster(employees, teams, dict(companies), company_of, by_device, True)

    def company_of(self, ident: str) -> CompanyConfig | None:
        """The company of an employee or team id (None: nobody's)."""
        cid = self._company_of.get(ident)
        return self.companies.get(cid) if cid is not None else None

    def employee_by_device(self, device: str) -> Employee | None:
        """Whose desk phone or softphone `device` is, in any company."""
        found = self._by_device.get(device)
        return self.employees[found] if found is not None else None

    def company_by_device(self, device: str) -> CompanyConfig | None:
        found = self._by_device.get(device)
        return self.company_of(found) if found is not None else None

    def timezone_of(self, ident: str, default: str = "Europe/Helsinki") -> str:
        """The time zone of an employee's (or team's) company; `default` for nobody's."""
        company = self.company_of(ident)
        return company.company.timezone if company is not None else default


# --- what a company file may not take from the others --------------------------------------


@dataclass(frozen=True)
class Owners:
    """What other companies hold: id, extension or number (digits) → that company's id."""

    employees: Mapping[str, str] = field(default_factory=dict)
    teams: Mapping[str, str] = field(default_factory=dict)
    extensions: Mapping[str, str] = field(default_factory=dict)
    numbers: Mapping[str, str] = field(default_factory=dict)  # company and direct numbers
    queues: Mapping[str, str] = field(default_factory=dict)  # team queue names (Asterisk's)


Problem = tuple[tuple[str, ...], str]  # (path in the file, what is wrong)


def collisions(config: CompanyConfig, others: Owners) -> list[Problem]:
    """Everything `config` names that another company already holds, in file order."""
    out: list[Problem] = []
    for number in config.numbers:
        owner = others.numbers.get(_digits(number))
        if owner is not None:
            out.append((("numbers", number), f"{number} is already company {owner!r}'s number"))
    for team_id, team in config.teams.items():
        owner = others.teams.get(team_id) or others.employees.get(team_id)
        if owner is not None:
            out.append((("teams", team_id), f"id already used by company {owner!r}"))
        # One Asterisk queue is one set of members: a name two companies shared would ring
        # one company's calls on the other's phones.
        owner = others.queues.get(team.queue) if team.queue else None
        if owner is not None:
            out.append((("teams", team_id, "queue"),
                        f"queue {team.queue!r} is already used by company {owner!r}"))
    for employee in config.employees.values():
        where = ("employees", employee.id)
        owner = others.employees.get(employee.id) or others.teams.get(employee.id)
        if owner is not None:
            out.append((where, f"id already used by company {owner!r}"))
        if employee.extension and employee.extension in others.extensions:
            owner = others.extensions[employee.extension]
            out.append(((*where, "extension"),
                        f"{employee.extension} is already an extension of company {owner!r}"))
        for number in employee.direct:
            owner = others.numbers.get(_digits(number))
            if owner is not None:
                out.append(((*where, "direct"),
                            f"{number} is already company {owner!r}'s number"))
    return out


def _find(root: Node, path: tuple[str, ...]) -> Node | None:
    node: Node | None = root
    found = None
    for key in path:
        if node is None or not isinstance(node.value, dict) or key not in node.value:
            break
        node = node.value[key]
        found = node
    return found


def located(problems: Iterable[Problem], root: Node, base_dir: Path | None) -> list[str]:
    """Each problem as `file:line: field: what`, found in the file (or its employees_file)."""
    included: Node | None = None
    out = []
    for path, message in problems:
        node = _find(root, path)
        if node is None and path[0] == "employees" and base_dir is not None:
            if included is None:
                name = _find(root, ("employees_file",))
                if name is not None and isinstance(name.value, str):
                    try:
                        included = load_yaml(base_dir / name.value)
                    except (ConfigError, OSError):
                        included = Node({}, root.where)
            if included is not None:
                node = _find(included, path)
        where = node.where if node is not None else root.where
        out.append(f"{where.file}:{where.line}: {'.'.join(path)}: {message}")
    return out


def check_collisions(
    config: CompanyConfig, others: Owners, *, path: str | Path | None = None,
    text: str | None = None, file: str = "<company>",
) -> None:
    """Raise ConfigError naming file:line for each collision; reads the file (or `text`) again
    only when there is one."""
    problems = collisions(config, others)
    if not problems:
        return
    if text is not None:
        root, base = parse_yaml(text, file), None
    elif path is not None:
        root, base = load_yaml(path), Path(path).parent
    else:
        raise ConfigError([f"{file}:1: {'.'.join(p)}: {m}" for p, m in problems])
    raise ConfigError(located(problems, root, base))


# --- which company a command acts on ------------------------------------------------------


def company_id_for(file_id: str, flag: str | None, known: Iterable[str]) -> str:
    """The company a `config check|diff|apply FILE [--company ID]` acts on.

    `--company` names it (the file's company.id, when it has one, must be the same); without it,
    the file's company.id (none: `main`), but only while the database holds at most one company
    — with several, an admin must say which, so that no file lands on the wrong client."""
    companies = list(known)
    if flag:
        if file_id and file_id != flag:
            raise ConfigError([f"company.id: the file is company {file_id!r}, not {flag!r} "
                               "(--company)"])
        return flag
    if len(companies) > 1:
        raise ConfigError([f"the service has {len(companies)} companies "
                           f"({', '.join(companies)}): say which (--company ID; API: ?company=ID)"])
    return file_id or MAIN_COMPANY


__all__ = ["CompanyIndex", "Owners", "Roster", "check_collisions", "collisions", "company_id_for",
           "located"]
