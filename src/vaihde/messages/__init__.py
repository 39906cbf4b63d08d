"""Messages and callback requests taken for employees and teams: stored before the caller is
told so, then delivered by e-mail and SMS with retries (see DESIGN.md and delivery.Sender).
"""
