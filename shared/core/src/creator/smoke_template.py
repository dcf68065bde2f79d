"""The smoke conversation the code review runs against agent.py, on the platform's model:
it greets, hands over when a customer describes each handoff situation, refuses what each
guardrail forbids, saves and reads back the details each step collects, and answers a
question. Each failure names the clause of the SOP that was not honoured."""

import json
import re
import sys

import agent

CASES = json.loads(r"""__CASES_JSON__""")
REFUSING = ("can't", "cannot", "can not", "unable", "not able", "sorry", "not allowed", "won't", "not permitted")


def _flat(text):
    return re.sub(r"\s+", " ", str(text)).strip().lower()


def _verdict(case, turn):
    """Why the turn fails the case, or None."""
    reply = str(turn.get("reply") or "")
    expect = case["expect"]
    if expect == "greeting":
        return None if reply == case["greeting"] else "the agent did not greet with %r" % case["greeting"]
    if expect == "handoff":
        return None if turn.get("handoff") else "the agent did not hand the conversation to a person"
    if expect == "refusal":
        refused = turn.get("handoff") or any(word in reply.lower() for word in REFUSING)
        return None if refused else "the agent did not refuse"
    if expect == "details":
        saved = [t for t in turn.get("tool_calls") or [] if t.get("name") == "save_details" and not t.get("is_error")]
        if not saved:
            return "the agent did not save the details"
        missing = [name for name, value in case["values"].items() if _flat(value) not in _flat(reply)]
        return "the agent did not read back %s" % ", ".join(missing) if missing else None
    if expect == "answer":
        return None if reply.strip() and not turn.get("handoff") else "the agent gave no answer"
    return "unknown expectation %r" % expect


failures = []
for case in CASES:
    request = {"message": case["say"], "history": [], "session_id": "smoke", "details": {}, "config": {}}
    answered = ""
    try:
        turn = agent.handle(request)
        answered = str(turn.get("reply") or "")
        verdict = _verdict(case, turn)
    except Exception as error:  # an agent that raises fails the case, not the review
        verdict = "the agent failed (%s: %s)" % (type(error).__name__, error)
    if verdict:
        said = ' when a customer said "%s"' % case["say"] if case["say"] else ""
        reply = ' (it answered "%s")' % (answered[:160] + ("…" if len(answered) > 160 else "")) if answered else ""
        failures.append('%s%s%s (the SOP: "%s")' % (verdict, said, reply, case["clause"]))
print(json.dumps({"passed": not failures, "failures": failures, "cases": len(CASES)}))
sys.exit(1 if failures else 0)
