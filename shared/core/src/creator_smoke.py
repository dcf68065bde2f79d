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
for step in agent.PLAN["flow"]:
    topic = sorted(agent._topic(step))
    if not step["collects"] or not topic:
        continue
    history, message = [], "I would like to " + " ".join(topic)
    for datum in step["collects"]:
        turn = agent.handle({"message": message, "history": history})
        check("asks for " + datum, turn["reply"] == agent._ask(datum))
        history += [{"role": "user", "text": message}, {"role": "assistant", "text": turn["reply"]}]
        message = "my " + datum
    turn = agent.handle({"message": message, "history": history})
    check("confirms what it collected", turn["reply"].startswith(agent._CONFIRM) and all(
        "my " + datum in turn["reply"] for datum in step["collects"]))
print(json.dumps({"passed": not failures, "failures": failures}))
sys.exit(1 if failures else 0)
