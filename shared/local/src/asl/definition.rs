//! A state machine definition: parsed, and refused whole when it uses anything the runner
//! does not implement.

use std::collections::HashMap;

use serde_json::Value;

/// Why a definition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid state machine definition: {0}")]
pub struct DefinitionError(String);

pub(super) fn invalid(message: impl Into<String>) -> DefinitionError {
    DefinitionError(message.into())
}

#[derive(Debug, Clone)]
pub(super) struct Retrier {
    pub(super) errors: Vec<String>,
    pub(super) interval: f64,
    pub(super) max_attempts: u32,
    pub(super) backoff: f64,
    pub(super) max_delay: Option<f64>,
}

#[derive(Debug, Clone)]
pub(super) struct Catcher {
    pub(super) errors: Vec<String>,
    pub(super) next: String,
    pub(super) result_path: ResultPath,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum ResultPath {
    Discard,
    At(String),
}

#[derive(Debug, Clone)]
pub(super) enum Transition {
    Next(String),
    End,
}

#[derive(Debug, Clone)]
pub(super) enum Kind {
    Task {
        resource: String,
        timeout: Option<f64>,
        retry: Vec<Retrier>,
        catch: Vec<Catcher>,
        result_selector: Option<Value>,
    },
    Pass {
        result: Option<Value>,
    },
    Choice {
        choices: Vec<(Value, String)>,
        default: Option<String>,
    },
    Wait {
        seconds: Option<f64>,
        seconds_path: Option<String>,
    },
    Succeed,
    Fail {
        error: String,
        cause: String,
    },
}

#[derive(Debug, Clone)]
pub(super) struct State {
    pub(super) kind: Kind,
    pub(super) input_path: Option<Option<String>>,
    pub(super) parameters: Option<Value>,
    pub(super) result_path: ResultPath,
    pub(super) output_path: Option<Option<String>>,
    pub(super) transition: Transition,
}

/// A parsed, validated state machine.
#[derive(Debug, Clone)]
pub struct StateMachine {
    pub(super) start_at: String,
    pub(super) states: HashMap<String, State>,
}

pub(super) fn string_list(v: &Value, field: &str) -> Result<Vec<String>, DefinitionError> {
    v.get(field)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|e| e.as_str().map(str::to_owned)).collect::<Vec<_>>())
        .filter(|l| !l.is_empty())
        .ok_or_else(|| invalid(format!("`{field}` must be a non-empty list of names")))
}

pub(super) fn path_field(v: &Value, field: &str) -> Result<Option<Option<String>>, DefinitionError> {
    match v.get(field) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(p)) if p.starts_with('$') => Ok(Some(Some(p.clone()))),
        Some(_) => Err(invalid(format!("`{field}` must be a path or null"))),
    }
}

pub(super) fn result_path(v: &Value) -> Result<ResultPath, DefinitionError> {
    match path_field(v, "ResultPath")? {
        None => Ok(ResultPath::At("$".into())),
        Some(None) => Ok(ResultPath::Discard),
        Some(Some(p)) => Ok(ResultPath::At(p)),
    }
}

pub(super) const KNOWN_FIELDS: &[&str] = &[
    "Type",
    "Comment",
    "Next",
    "End",
    "Resource",
    "InputPath",
    "OutputPath",
    "Parameters",
    "ResultPath",
    "ResultSelector",
    "Retry",
    "Catch",
    "TimeoutSeconds",
    "Result",
    "Choices",
    "Default",
    "Seconds",
    "SecondsPath",
    "Error",
    "Cause",
];

impl StateMachine {
    pub fn parse(definition: &str) -> Result<Self, DefinitionError> {
        let doc: Value = serde_json::from_str(definition).map_err(|e| invalid(format!("not JSON: {e}")))?;
        let start_at = doc["StartAt"].as_str().ok_or_else(|| invalid("no StartAt"))?.to_owned();
        let raw = doc["States"].as_object().ok_or_else(|| invalid("no States"))?;
        let mut states = HashMap::new();
        for (name, s) in raw {
            let context = |e: DefinitionError| invalid(format!("state {name}: {}", e.0));
            if let Some(unknown) =
                s.as_object().into_iter().flatten().map(|(k, _)| k).find(|k| !KNOWN_FIELDS.contains(&k.as_str()))
            {
                return Err(invalid(format!("state {name}: the embedded runner does not support `{unknown}`")));
            }
            let transition = match (s.get("Next").and_then(Value::as_str), s.get("End")) {
                (Some(next), None) => Transition::Next(next.to_owned()),
                (None, Some(Value::Bool(true))) => Transition::End,
                _ => Transition::End,
            };
            let kind = match s["Type"].as_str() {
                Some("Task") => {
                    let retry = s
                        .get("Retry")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .map(|r| {
                            Ok(Retrier {
                                errors: string_list(r, "ErrorEquals")?,
                                interval: r.get("IntervalSeconds").and_then(Value::as_f64).unwrap_or(1.0),
                                max_attempts: r.get("MaxAttempts").and_then(Value::as_u64).unwrap_or(3) as u32,
                                backoff: r.get("BackoffRate").and_then(Value::as_f64).unwrap_or(2.0),
                                max_delay: r.get("MaxDelaySeconds").and_then(Value::as_f64),
                            })
                        })
                        .collect::<Result<_, DefinitionError>>()
                        .map_err(context)?;
                    let catch = s
                        .get("Catch")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .map(|c| {
                            Ok(Catcher {
                                errors: string_list(c, "ErrorEquals")?,
                                next: c["Next"].as_str().ok_or_else(|| invalid("a Catch without Next"))?.to_owned(),
                                result_path: result_path(c)?,
                            })
                        })
                        .collect::<Result<_, DefinitionError>>()
                        .map_err(context)?;
                    Kind::Task {
                        resource: s["Resource"].as_str().ok_or_else(|| context(invalid("no Resource")))?.to_owned(),
                        timeout: s.get("TimeoutSeconds").and_then(Value::as_f64),
                        retry,
                        catch,
                        result_selector: s.get("ResultSelector").cloned(),
                    }
                }
                Some("Pass") => Kind::Pass { result: s.get("Result").cloned() },
                Some("Choice") => {
                    let choices = s["Choices"]
                        .as_array()
                        .filter(|c| !c.is_empty())
                        .ok_or_else(|| context(invalid("a Choice needs Choices")))?
                        .iter()
                        .map(|c| {
                            let next = c["Next"].as_str().ok_or_else(|| context(invalid("a choice without Next")))?;
                            check_rule(c).map_err(context)?;
                            Ok((c.clone(), next.to_owned()))
                        })
                        .collect::<Result<_, DefinitionError>>()?;
                    Kind::Choice { choices, default: s.get("Default").and_then(Value::as_str).map(str::to_owned) }
                }
                Some("Wait") => Kind::Wait {
                    seconds: s.get("Seconds").and_then(Value::as_f64),
                    seconds_path: s.get("SecondsPath").and_then(Value::as_str).map(str::to_owned),
                },
                Some("Succeed") => Kind::Succeed,
                Some("Fail") => Kind::Fail {
                    error: s.get("Error").and_then(Value::as_str).unwrap_or("States.Fail").to_owned(),
                    cause: s.get("Cause").and_then(Value::as_str).unwrap_or_default().to_owned(),
                },
                other => return Err(context(invalid(format!("unsupported Type {other:?}")))),
            };
            if matches!(kind, Kind::Task { .. } | Kind::Pass { .. } | Kind::Wait { .. })
                && s.get("Next").is_none()
                && s.get("End") != Some(&Value::Bool(true))
            {
                return Err(context(invalid("needs Next or End")));
            }
            let state = State {
                kind,
                input_path: path_field(s, "InputPath").map_err(context)?,
                parameters: s.get("Parameters").cloned(),
                result_path: result_path(s).map_err(context)?,
                output_path: path_field(s, "OutputPath").map_err(context)?,
                transition,
            };
            states.insert(name.clone(), state);
        }
        let machine = Self { start_at, states };
        machine.check_targets()?;
        Ok(machine)
    }

    fn check_targets(&self) -> Result<(), DefinitionError> {
        let exists = |name: &str| {
            if self.states.contains_key(name) { Ok(()) } else { Err(invalid(format!("no state named {name}"))) }
        };
        exists(&self.start_at)?;
        for state in self.states.values() {
            if let Transition::Next(next) = &state.transition {
                exists(next)?;
            }
            match &state.kind {
                Kind::Task { catch, .. } => catch.iter().try_for_each(|c| exists(&c.next))?,
                Kind::Choice { choices, default } => {
                    choices.iter().try_for_each(|(_, next)| exists(next))?;
                    default.iter().try_for_each(|d| exists(d))?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

pub(super) const COMPARISONS: &[&str] = &[
    "StringEquals",
    "StringEqualsPath",
    "NumericEquals",
    "NumericEqualsPath",
    "NumericGreaterThan",
    "NumericGreaterThanEquals",
    "NumericLessThan",
    "NumericLessThanEquals",
    "BooleanEquals",
    "IsPresent",
    "IsNull",
    "StringMatches",
];

pub(super) fn check_rule(rule: &Value) -> Result<(), DefinitionError> {
    if let Some(all) = rule.get("And").or_else(|| rule.get("Or")).and_then(Value::as_array) {
        return all.iter().try_for_each(check_rule);
    }
    if let Some(inner) = rule.get("Not") {
        return check_rule(inner);
    }
    if rule.get("Variable").and_then(Value::as_str).is_none() {
        return Err(invalid("a choice rule without Variable"));
    }
    if !COMPARISONS.iter().any(|c| rule.get(*c).is_some()) {
        return Err(invalid("a choice rule with no comparison the embedded runner supports"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_with_unknown_features_or_targets_are_refused() {
        let unknown = r#"{"StartAt":"A","States":{"A":{"Type":"Map","End":true}}}"#;
        assert!(StateMachine::parse(unknown).is_err());
        let dangling = r#"{"StartAt":"A","States":{"A":{"Type":"Pass","Next":"B"}}}"#;
        assert!(StateMachine::parse(dangling).is_err());
        let field = r#"{"StartAt":"A","States":{"A":{"Type":"Pass","End":true,"ItemsPath":"$"}}}"#;
        assert!(StateMachine::parse(field).is_err());
    }
}
