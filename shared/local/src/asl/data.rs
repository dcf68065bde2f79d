//! How data flows through states, as Step Functions defines it: paths, `Parameters`
//! templates with `States.Format`, choice rules and error-name matching.

use oratio_core::workflow::TaskFailure;
use serde_json::{Map, Value};

/// The failure of a state: a name to match and a cause.
pub(super) fn runtime(cause: impl Into<String>) -> TaskFailure {
    TaskFailure::new("States.Runtime", cause)
}

/// Reads a path (`$`, `$.a.b`, `$.a[0].b`) from `value`.
pub(super) fn read_path(value: &Value, path: &str) -> Option<Value> {
    let rest = path.strip_prefix('$')?;
    let mut current = value;
    for segment in rest.split('.').skip(1) {
        let (name, index) = match segment.split_once('[') {
            Some((name, idx)) => (name, Some(idx.trim_end_matches(']').parse::<usize>().ok()?)),
            None => (segment, None),
        };
        if !name.is_empty() {
            current = current.get(name)?;
        }
        if let Some(i) = index {
            current = current.get(i)?;
        }
    }
    Some(current.clone())
}

/// Writes `result` into `input` at `path` (`$` replaces it), creating objects on the way.
pub(super) fn write_path(mut input: Value, path: &str, result: Value) -> Result<Value, TaskFailure> {
    if path == "$" {
        return Ok(result);
    }
    let segments: Vec<&str> =
        path.strip_prefix("$.").ok_or_else(|| runtime(format!("bad ResultPath {path}")))?.split('.').collect();
    let mut current = &mut input;
    for (i, segment) in segments.iter().enumerate() {
        let object =
            current.as_object_mut().ok_or_else(|| runtime(format!("ResultPath {path} crosses a non-object")))?;
        if i == segments.len() - 1 {
            object.insert((*segment).to_owned(), result);
            break;
        }
        current = object.entry((*segment).to_owned()).or_insert_with(|| Value::Object(Map::new()));
    }
    Ok(input)
}

/// Evaluates a `Parameters` / `ResultSelector` template against `input` and the context.
pub(super) fn render(template: &Value, input: &Value, context: &Value) -> Result<Value, TaskFailure> {
    match template {
        Value::Object(fields) => {
            let mut out = Map::new();
            for (key, value) in fields {
                match key.strip_suffix(".$") {
                    Some(name) => {
                        let expr = value.as_str().ok_or_else(|| runtime(format!("{key} must be a path")))?;
                        out.insert(name.to_owned(), evaluate(expr, input, context)?);
                    }
                    None => {
                        out.insert(key.clone(), render(value, input, context)?);
                    }
                }
            }
            Ok(Value::Object(out))
        }
        Value::Array(items) => {
            items.iter().map(|v| render(v, input, context)).collect::<Result<_, _>>().map(Value::Array)
        }
        other => Ok(other.clone()),
    }
}

pub(super) fn evaluate(expr: &str, input: &Value, context: &Value) -> Result<Value, TaskFailure> {
    if let Some(args) = expr.strip_prefix("States.Format(").and_then(|a| a.strip_suffix(')')) {
        return format_intrinsic(args, input, context);
    }
    let (source, path) = match expr.strip_prefix("$$") {
        Some(rest) => (context, format!("${rest}")),
        None => (input, expr.to_owned()),
    };
    read_path(source, &path).ok_or_else(|| runtime(format!("the path {expr} matched nothing")))
}

/// `States.Format('text {} more {}', $.a, $.b)`.
pub(super) fn format_intrinsic(args: &str, input: &Value, context: &Value) -> Result<Value, TaskFailure> {
    let args = args.trim();
    let template_end = args[1..].find('\'').map(|i| i + 1).filter(|_| args.starts_with('\''));
    let end = template_end.ok_or_else(|| runtime("States.Format needs a quoted template"))?;
    let template = &args[1..end];
    let values: Vec<Value> = args[end + 1..]
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| evaluate(a, input, context))
        .collect::<Result<_, _>>()?;
    let mut out = String::new();
    let mut values = values.into_iter();
    let mut rest = template;
    while let Some(i) = rest.find("{}") {
        out.push_str(&rest[..i]);
        let value = values.next().ok_or_else(|| runtime("States.Format has more {} than arguments"))?;
        match value {
            Value::String(s) => out.push_str(&s),
            other => out.push_str(&other.to_string()),
        }
        rest = &rest[i + 2..];
    }
    out.push_str(rest);
    Ok(Value::String(out))
}

pub(super) fn holds(rule: &Value, input: &Value) -> Result<bool, TaskFailure> {
    if let Some(all) = rule.get("And").and_then(Value::as_array) {
        for r in all {
            if !holds(r, input)? {
                return Ok(false);
            }
        }
        return Ok(true);
    }
    if let Some(any) = rule.get("Or").and_then(Value::as_array) {
        for r in any {
            if holds(r, input)? {
                return Ok(true);
            }
        }
        return Ok(false);
    }
    if let Some(inner) = rule.get("Not") {
        return Ok(!holds(inner, input)?);
    }
    let variable = rule["Variable"].as_str().unwrap_or("$");
    let value = read_path(input, variable);
    if let Some(expected) = rule.get("IsPresent").and_then(Value::as_bool) {
        return Ok(value.is_some() == expected);
    }
    let value = value.ok_or_else(|| runtime(format!("the choice variable {variable} matched nothing")))?;
    let number = |name: &str| rule.get(name).and_then(Value::as_f64);
    let n = value.as_f64();
    Ok(if let Some(expected) = rule.get("IsNull").and_then(Value::as_bool) {
        value.is_null() == expected
    } else if let Some(s) = rule.get("StringEquals").and_then(Value::as_str) {
        value.as_str() == Some(s)
    } else if let Some(p) = rule.get("StringEqualsPath").and_then(Value::as_str) {
        value.as_str().is_some() && read_path(input, p).as_ref() == Some(&value)
    } else if let Some(pattern) = rule.get("StringMatches").and_then(Value::as_str) {
        value.as_str().is_some_and(|v| wildcard(pattern, v))
    } else if let Some(b) = rule.get("BooleanEquals").and_then(Value::as_bool) {
        value.as_bool() == Some(b)
    } else if let Some(x) = number("NumericEquals") {
        n == Some(x)
    } else if let Some(p) = rule.get("NumericEqualsPath").and_then(Value::as_str) {
        n.is_some() && read_path(input, p).and_then(|v| v.as_f64()) == n
    } else if let Some(x) = number("NumericGreaterThan") {
        n.is_some_and(|v| v > x)
    } else if let Some(x) = number("NumericGreaterThanEquals") {
        n.is_some_and(|v| v >= x)
    } else if let Some(x) = number("NumericLessThan") {
        n.is_some_and(|v| v < x)
    } else if let Some(x) = number("NumericLessThanEquals") {
        n.is_some_and(|v| v <= x)
    } else {
        false
    })
}

/// `*` matches any run of characters.
pub(super) fn wildcard(pattern: &str, value: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut rest = value;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else { return false };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            let Some(at) = rest.find(part) else { return false };
            rest = &rest[at + part.len()..];
        }
    }
    rest.is_empty()
}

pub(super) fn matches(names: &[String], error: &str) -> bool {
    // `States.Runtime` ends the execution: no `States.ALL` catches it.
    names.iter().any(|n| {
        n == error
            || (n == "States.ALL" && error != "States.Runtime")
            || (n == "States.TaskFailed" && !error.starts_with("States."))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_read_and_write_like_step_functions() {
        let v = json!({"a": {"b": [1, {"c": "x"}]}});
        assert_eq!(read_path(&v, "$.a.b[1].c"), Some(json!("x")));
        assert_eq!(read_path(&v, "$"), Some(v.clone()));
        assert_eq!(read_path(&v, "$.nope"), None);
        assert_eq!(write_path(json!({"a": 1}), "$.r.s", json!(2)).unwrap(), json!({"a": 1, "r": {"s": 2}}));
        assert_eq!(write_path(json!({"a": 1}), "$", json!(2)).unwrap(), json!(2));
        assert!(write_path(json!({"a": 1}), "$.a.b", json!(2)).is_err());
    }

    #[test]
    fn parameters_render_paths_context_and_format() {
        let template = json!({"agent.$": "$.agent", "name.$": "$$.Execution.Name", "fixed": 1, "msg.$": "States.Format('agent {} step {}', $.agent, $.n)"});
        let out =
            render(&template, &json!({"agent": "agt_1", "n": 2}), &json!({"Execution": {"Name": "exec-1"}})).unwrap();
        assert_eq!(out, json!({"agent": "agt_1", "name": "exec-1", "fixed": 1, "msg": "agent agt_1 step 2"}));
        assert_eq!(render(&json!({"x.$": "$.missing"}), &json!({}), &json!({})).unwrap_err().error, "States.Runtime");
    }

    #[test]
    fn error_names_match_as_documented() {
        let all = vec!["States.ALL".to_owned()];
        assert!(matches(&all, "Retryable") && matches(&all, "States.Timeout"));
        assert!(!matches(&all, "States.Runtime"));
        let task_failed = vec!["States.TaskFailed".to_owned()];
        assert!(matches(&task_failed, "InvalidSop") && !matches(&task_failed, "States.Timeout"));
        assert!(wildcard("agt_*", "agt_1") && !wildcard("agt_*x", "agt_1"));
    }
}
