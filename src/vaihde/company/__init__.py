"""The admin's company configuration: one YAML file → validated immutable objects (`load`,
shapes in `schema`), its opening hours (`hours`), and what changes between two versions
(`diff`). The package names the front door: load a file, and what it gives.
"""

from vaihde.company.load import company_from_document, load_company, parse_company
from vaihde.company.schema import CompanyConfig
from vaihde.config.source import ConfigError

__all__ = ["CompanyConfig", "ConfigError", "company_from_document", "load_company", "parse_company"]
