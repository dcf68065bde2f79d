"""Reviews a generated agent in the current directory; prints a JSON report."""
import ast
import json
import py_compile
import subprocess
import sys

report = {"compiles": True, "disallowed_imports": [], "has_entrypoint": False, "smoke_passed": False, "findings": []}
allowed = set(sys.stdlib_module_names) | {"oratio_agent"}
try:
    for name in ("agent.py", "smoke_test.py"):
        py_compile.compile(name, doraise=True)
except py_compile.PyCompileError as error:
    report["compiles"] = False
    report["findings"].append("the code does not compile: " + str(error.msg).strip().splitlines()[-1])
if report["compiles"]:
    tree = ast.parse(open("agent.py", encoding="utf-8").read())
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""] if node.level == 0 else ["." + (node.module or "")]
        for name in names:
            top = name.split(".")[0] if not name.startswith(".") else name
            if top not in allowed and name not in report["disallowed_imports"]:
                report["disallowed_imports"].append(name)
    for name in report["disallowed_imports"]:
        report["findings"].append("agent.py imports " + name + ", which is neither the standard library nor oratio_agent")
    defines_handle = any(isinstance(n, ast.FunctionDef) and n.name == "handle" for n in tree.body)
    serves = any(
        isinstance(n, ast.If) and "__main__" in ast.dump(n.test) and "serve" in ast.dump(n)
        for n in tree.body
    )
    report["has_entrypoint"] = defines_handle and serves
    if not report["has_entrypoint"]:
        report["findings"].append("agent.py must define handle(request) and call oratio_agent.serve(handle) under __main__")
    if report["has_entrypoint"] and not report["disallowed_imports"]:
        try:
            run = subprocess.run([sys.executable, "smoke_test.py"], capture_output=True, text=True, timeout=360)
            lines = [l for l in run.stdout.splitlines() if l.strip()]
            result = json.loads(lines[-1]) if lines else {"passed": False, "failures": [run.stderr.strip()[-300:]]}
        except subprocess.TimeoutExpired:
            result = {"passed": False, "failures": ["the smoke conversation did not finish within 6 minutes"]}
        except ValueError:
            result = {"passed": False, "failures": [run.stderr.strip()[-300:] or "the smoke conversation printed no report"]}
        report["smoke_passed"] = bool(result.get("passed"))
        for failure in result.get("failures", []):
            report["findings"].append("smoke conversation: " + str(failure))
print(json.dumps(report))
