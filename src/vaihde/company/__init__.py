"""The admin's company configuration: one YAML file → validated immutable objects, its opening
hours, and what changes between two versions.
"""

from vaihde.company.diff import Change, diff_company, render_diff
from vaihde.company.hours import DayRule, OpenState, day_rule, is_open, next_opening, open_now
from vaihde.company.load import company_from_document, load_company, parse_company
from vaihde.company.schema import (
    Announcement,
    ClosedAction,
    CompanyConfig,
    CompanyInfo,
    Device,
    Employee,
    Holiday,
    HoursException,
    Menu,
    MenuOption,
    Number,
    OpeningHours,
    Say,
    Target,
    Team,
    TimeRange,
)
from vaihde.config.source import ConfigError

__all__ = [
    "Announcement",
    "Change",
    "ClosedAction",
    "CompanyConfig",
    "CompanyInfo",
    "ConfigError",
    "DayRule",
    "Device",
    "Employee",
    "Holiday",
    "HoursException",
    "Menu",
    "MenuOption",
    "Number",
    "OpenState",
    "OpeningHours",
    "Say",
    "Target",
    "Team",
    "TimeRange",
    "company_from_document",
    "day_rule",
    "diff_company",
    "is_open",
    "load_company",
    "next_opening",
    "open_now",
    "parse_company",
    "render_diff",
]
