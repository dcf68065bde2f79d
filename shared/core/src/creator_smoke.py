"""The smoke conversation the code review runs against agent.py: it greets, hands over on
every handoff phrase, refuses what each guardrail forbids, and answers a question."""

import json
import sys

import agent

failures = []


def check(name, condition):
    if not condition:
        failures.append(name)


greeting = agent.handle({"message": ""})
check("greets", greeting["reply"] == agent.PLAN["greeting"])
for rule in agent.PLAN["handoff"]:
    for trigger in rule["triggers"]:
        turn = agent.handle({"message": "Hello, " + trigger + " please"})
        check("hands over on '%s'" % trigger, bool(turn["handoff"]) and turn["handoff"]["reason"] == rule["reason"])
for guardrail in agent.PLAN["guardrails"]:
    if guardrail["stems"]:
        turn = agent.handle({"message": "Could you " + " ".join(guardrail["stems"]) + "?"})
        check("refuses: " + guardrail["rule"], turn["reply"] == agent.PLAN["refusal"] and not turn["handoff"])
answer = agent.handle({"message": "What can you tell me?", "history": [{"role": "assistant", "text": agent.PLAN["greeting"]}]})
check("answers a question", isinstance(answer["reply"], str) and answer["reply"] != "" and answer["handoff"] is None)
print(json.dumps({"passed": not failures, "failures": failures}))
sys.exit(1 if failures else 0)
