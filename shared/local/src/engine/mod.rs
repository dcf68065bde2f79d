//! The local engine: the embedded platform's default model. It needs no model weights of
//! its own and answers the same prompt with the same answer, every time.
//!
//! * AgentCreator's steps it answers by the creator's rules
//!   ([`oratio_core::creator::model::answer_by_rules`]).
//! * An agent's turn it takes as a tool-calling model would ([`policy`]): it reads the
//!   agent's system prompt ([`brief`]), understands the customer's message in their own
//!   words ([`understand`], with the [`lexicon`] and, when one runs, the embedding
//!   engine), finds the details they give ([`extract`]), and calls `hand_off`,
//!   `save_details`, `search_knowledge` or `end_conversation`, or answers; given the tools'
//!   results it replies: the sentence or row that answers ([`answer`]), the details read
//!   back, what happens next.
//! * Text streams word by word.

pub mod answer;
pub mod brief;
pub mod extract;
pub mod lexicon;
pub mod policy;
pub mod tools;
pub mod understand;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use oratio_core::embeddings::{Embeddings, TextKind, cosine};
use oratio_core::llm::{Completion, Llm, LlmError, Prompt, StopReason, TextSink};

pub const LOCAL_ENGINE_MODEL: &str = "oratio-local-engine";

/// How many embedded texts the engine remembers (anchors, document sentences).
const CACHE_ENTRIES: usize = 50_000;

pub struct LocalEngine {
    embeddings: Option<Arc<dyn Embeddings>>,
    cache: Mutex<HashMap<String, Arc<Vec<f32>>>>,
}

impl Default for LocalEngine {
    fn default() -> Self {
        Self::new(None)
    }
}

impl LocalEngine {
    /// The engine; with `embeddings` it understands meaning, without it words.
    pub fn new(embeddings: Option<Arc<dyn Embeddings>>) -> Self {
        Self { embeddings, cache: Mutex::new(HashMap::new()) }
    }

    /// The texts' vectors, from the cache or the embedding engine; `None` when there is
    /// no embedding engine (or it fails: the engine then works on words).
    pub async fn vectors(&self, texts: &[String]) -> Option<Vec<Arc<Vec<f32>>>> {
        let embeddings = self.embeddings.as_ref()?;
        let missing: Vec<String> = {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            let mut missing: Vec<String> = texts.iter().filter(|t| !cache.contains_key(*t)).cloned().collect();
            missing.sort();
            missing.dedup();
            missing
        };
        if !missing.is_empty() {
            let embedded =
                match oratio_core::embeddings::embed_all(embeddings.as_ref(), &missing, TextKind::Query).await {
                    Ok(embedded) => embedded,
                    Err(e) => {
                        tracing::debug!(cause = %e, "the local engine reads words only for this turn");
                        return None;
                    }
                };
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if cache.len() + missing.len() > CACHE_ENTRIES {
                cache.clear();
            }
            for (text, vector) in missing.into_iter().zip(embedded) {
                cache.insert(text, Arc::new(vector));
            }
        }
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        texts.iter().map(|t| cache.get(t).cloned()).collect()
    }

    /// For each set of anchors, the message's best similarity to one of them.
    pub async fn similarities(&self, message: &str, sets: &[Vec<String>]) -> Option<Vec<f32>> {
        let mut texts = vec![message.to_owned()];
        texts.extend(sets.iter().flatten().cloned());
        let vectors = self.vectors(&texts).await?;
        let (first, rest) = vectors.split_first()?;
        let mut at = 0;
        let mut out = Vec::with_capacity(sets.len());
        for set in sets {
            let best = rest[at..at + set.len()].iter().map(|v| cosine(first, v)).fold(f32::MIN, f32::max);
            out.push(best);
            at += set.len();
        }
        Some(out)
    }
}

/// Counts words, as the engine's token usage.
fn count(text: &str) -> u32 {
    text.split_whitespace().count() as u32
}

#[async_trait]
impl Llm for LocalEngine {
    fn model(&self) -> &str {
        LOCAL_ENGINE_MODEL
    }

    async fn complete(&self, prompt: &Prompt) -> Result<Completion, LlmError> {
        prompt.validate()?;
        let input = count(&prompt.system) + prompt.messages.iter().map(|m| count(&m.text())).sum::<u32>();
        let (text, tool_calls) = match oratio_core::creator::model::answer_by_rules(prompt) {
            Some(text) => (text, Vec::new()),
            None => policy::respond(self, prompt).await,
        };
        Ok(Completion {
            output_tokens: Some(count(&text) + tool_calls.len() as u32 * 8),
            stop_reason: if tool_calls.is_empty() { StopReason::EndTurn } else { StopReason::ToolUse },
            text,
            tool_calls,
            model: LOCAL_ENGINE_MODEL.into(),
            input_tokens: Some(input),
            fallback_used: false,
        })
    }

    async fn stream(&self, prompt: &Prompt, text: &TextSink<'_>) -> Result<Completion, LlmError> {
        let completion = self.complete(prompt).await?;
        for piece in completion.text.split_inclusive(' ') {
            text(piece);
        }
        Ok(completion)
    }
}
