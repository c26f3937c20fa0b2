"""The dialogue's handlers, one module per topic, each with its own router; ``router`` includes them all.

An intent no module registers is answered from the knowledge base (``TurnContext.answer_from_kb``).
"""

from __future__ import annotations

from bot.handlers import complaints, orders, policy, presale, smalltalk
from bot.handlers.context import TurnContext
from bot.router import Router

router: Router[TurnContext] = Router(name="kefu", default=TurnContext.answer_from_kb)
router.include_routers(smalltalk.router, presale.router, orders.router, policy.router, complaints.router)
