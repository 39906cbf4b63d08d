"""Reports for a service centre that bills its client companies: time per client and month
(calls, operator handling time = talk plus wrap-up, messages taken)."""
