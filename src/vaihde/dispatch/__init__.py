"""Message dispatch: urgent messages confirmed by their recipient with an SMS reply code and
escalated along an on-call rota until someone confirms (`model` decides, `store` keeps the state,
`job` sends and escalates, `http` the gateway's webhook and the operators' view), and the daily
message summary per company by e-mail (`summary`).
"""
