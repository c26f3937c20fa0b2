"""The agents' and managers' web pages: login, the handoff queue, cases, reports, the NLU inbox."""
