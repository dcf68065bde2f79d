//! The `KnowledgeBase` port: an agent's documents, searchable by meaning or by words
//! (a Bedrock Knowledge Base in AWS, a full-text index per agent on one machine), and the
//! chunking both use so that every passage keeps its document and place for citations.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::blob::BlobKey;
use crate::ids::{AgentId, TenantId};

/// Whose knowledge: every operation is confined to one agent of one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KnowledgeScope {
    pub tenant: TenantId,
    pub agent: AgentId,
}

/// A document to ingest, already stored in the blob store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceDocument {
    pub document_id: String,
    /// The name a citation shows (the uploaded file name).
    pub title: String,
    pub blob: String,
    pub content_type: String,
}

impl SourceDocument {
    pub fn blob_key(&self) -> Result<BlobKey, KnowledgeError> {
        BlobKey::parse(self.blob.clone())
            .map_err(|_| KnowledgeError::Invalid(format!("bad blob key for {}", self.title)))
    }
}

/// A retrieved piece of a document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Passage {
    pub document_id: String,
    pub title: String,
    /// Where in the document: `page 3`, `Opening hours`, `rows 2-40`, `lines 10-25`.
    pub location: String,
    pub text: String,
    pub score: f32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestionJob(pub String);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum IngestionStatus {
    InProgress,
    Complete {
        documents: u32,
        /// How many passages were indexed, where the backend says (Bedrock does not).
        passages: Option<u32>,
    },
    /// `reason` is for the tenant: which document, and why.
    Failed {
        reason: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum KnowledgeError {
    #[error("{0}")]
    Invalid(String),
    #[error("no such ingestion job")]
    UnknownJob,
    #[error("the knowledge base is temporarily unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error("the knowledge base failed")]
    Backend(#[source] anyhow::Error),
}

#[async_trait]
pub trait KnowledgeBase: Send + Sync {
    /// Starts (re)building the scope's knowledge from `documents`; poll `status`.
    async fn ingest(
        &self,
        scope: &KnowledgeScope,
        documents: &[SourceDocument],
    ) -> Result<IngestionJob, KnowledgeError>;

    async fn status(&self, scope: &KnowledgeScope, job: &IngestionJob) -> Result<IngestionStatus, KnowledgeError>;

    /// The passages that best answer `query`, best first.
    async fn retrieve(&self, scope: &KnowledgeScope, query: &str, limit: usize)
    -> Result<Vec<Passage>, KnowledgeError>;

    /// Forgets the scope's knowledge.
    async fn remove(&self, scope: &KnowledgeScope) -> Result<(), KnowledgeError>;
}

/// A titled part of a document as extraction found it (a page, a section, a run of rows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Section {
    pub location: String,
    pub text: String,
}

/// What reading one document may take. A few kilobytes can announce gigabytes (a PDF
/// stream that inflates a thousandfold, a CSV of one endless line): every bound is checked
/// while reading, and a document over one is refused, naming it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadingLimits {
    /// Decompressed bytes of a PDF's text-bearing streams (pages, forms, fonts); images
    /// are not decoded, so they do not count.
    pub inflated_bytes: u64,
    pub pages: usize,
    /// Objects in a PDF.
    pub objects: usize,
    /// Characters of text a document may yield.
    pub characters: usize,
    /// Wall-clock time to read it.
    pub seconds: u64,
    /// Memory the reader may take (the address space of the reading process).
    pub memory_bytes: u64,
}

impl Default for ReadingLimits {
    fn default() -> Self {
        Self {
            inflated_bytes: 16 * 1024 * 1024,
            pages: 2_000,
            objects: 200_000,
            characters: 2_000_000,
            seconds: 30,
            memory_bytes: 1024 * 1024 * 1024,
        }
    }
}

/// Why a document cannot become knowledge; every message names the document's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DocumentError {
    #[error("{message}")]
    Unsupported { message: String },
    #[error("{message}")]
    Unreadable { message: String },
    /// Over one of the `ReadingLimits`; `limit` is its name (`inflated_bytes`, `pages`, …).
    #[error("{message}")]
    OverLimit { limit: String, message: String },
    /// The reader itself failed (not the document's fault).
    #[error("{message}")]
    Failed { message: String },
}

impl DocumentError {
    pub fn unreadable(message: impl Into<String>) -> Self {
        Self::Unreadable { message: message.into() }
    }

    pub fn over(limit: &str, message: impl Into<String>) -> Self {
        Self::OverLimit { limit: limit.into(), message: message.into() }
    }
}

/// The `DocumentReader` port: a document's text, by sections, read within `ReadingLimits`
/// and where its memory comes back (a child process on both homes).
#[async_trait]
pub trait DocumentReader: Send + Sync {
    async fn read(&self, content_type: &str, title: &str, bytes: Vec<u8>) -> Result<Vec<Section>, DocumentError>;
}

/// A passage to index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub location: String,
    pub text: String,
}

/// Splits sections into passages of at most `max_chars`, each starting `overlap` characters
/// before the previous one ended (so a fact cut at a boundary is whole in one of them).
/// Cuts fall on paragraph, then sentence, then word boundaries when they can.
pub fn chunk(sections: &[Section], max_chars: usize, overlap: usize) -> Vec<Chunk> {
    assert!(overlap < max_chars, "the overlap must be shorter than a passage");
    let mut chunks = Vec::new();
    for section in sections {
        let text: Vec<char> = section.text.trim().chars().collect();
        let mut start = 0;
        while start < text.len() {
            let mut end = (start + max_chars).min(text.len());
            if end < text.len() {
                end = best_cut(&text[start..end]).map_or(end, |cut| start + cut);
            }
            let passage: String = text[start..end].iter().collect::<String>().trim().to_owned();
            if !passage.is_empty() {
                chunks.push(Chunk { location: section.location.clone(), text: passage });
            }
            if end >= text.len() {
                break;
            }
            // Step back by the overlap, to a word boundary, but always move forward.
            let mut next = end.saturating_sub(overlap).max(start + 1);
            while next > start + 1 && next < end && !text[next - 1].is_whitespace() {
                next -= 1;
            }
            start = next;
        }
    }
    chunks
}

/// The last good place to cut `window`, past its first half.
fn best_cut(window: &[char]) -> Option<usize> {
    let half = window.len() / 2;
    let last = |pred: &dyn Fn(usize) -> bool| (half..window.len()).rev().find(|&i| pred(i));
    last(&|i| i > 0 && window[i] == '\n' && window[i - 1] == '\n')
        .or_else(|| last(&|i| i > 0 && window[i].is_whitespace() && matches!(window[i - 1], '.' | '!' | '?')))
        .or_else(|| last(&|i| window[i].is_whitespace()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(text: &str) -> Vec<Section> {
        vec![Section { location: "Hours".into(), text: text.into() }]
    }

    #[test]
    fn short_sections_are_one_passage() {
        assert_eq!(
            chunk(&section("We open at nine."), 100, 20),
            vec![Chunk { location: "Hours".into(), text: "We open at nine.".into() }]
        );
    }

    #[test]
    fn long_sections_overlap_and_cut_at_sentences() {
        let text = "Sentence one is here. Sentence two is here. Sentence three is here. Sentence four is here.";
        let chunks = chunk(&section(text), 50, 20);
        assert!(chunks.len() >= 2);
        assert!(chunks.iter().all(|c| c.text.chars().count() <= 50 && c.location == "Hours"));
        assert!(chunks[0].text.ends_with('.'), "{:?}", chunks[0]);
        // Every sentence is whole in some passage.
        for s in ["Sentence one is here.", "Sentence two is here.", "Sentence three is here.", "Sentence four is here."]
        {
            assert!(chunks.iter().any(|c| c.text.contains(s)), "{s} is cut everywhere: {chunks:?}");
        }
    }

    #[test]
    fn unbroken_text_still_moves_forward() {
        let chunks = chunk(&section(&"x".repeat(250)), 100, 30);
        assert!(chunks.len() >= 3 && chunks.iter().all(|c| c.text.len() <= 100));
    }
}
