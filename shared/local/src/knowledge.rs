//! `KnowledgeBase` on one machine: text read from each document (plain text, Markdown,
//! HTML, CSV, PDF; see `documents`), cut into overlapping passages that keep their place, and
//! indexed per agent twice: with tantivy (BM25 over English-stemmed title and text) and,
//! when an embedding engine is there, as vectors. Retrieval is hybrid: the two rankings
//! are fused (reciprocal rank fusion), so a question finds its passage by its words or by
//! its meaning; without vectors it is BM25 alone.
//!
//! An agent's index lives in `<root>/<tenant>/<agent>/<job>/` (tantivy's files, and
//! `passages.json` with `vectors.bin` beside them); `current` names the live one, replaced
//! atomically when an ingestion completes, so searches never see half an index. Job status
//! is kept in the table (`KNOWLEDGE#<tenant>#<agent>` / `JOB#<job>`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, anyhow};
use async_trait::async_trait;
use oratio_core::blob::{BlobStore, tenant_prefix};
use oratio_core::embeddings::{Embeddings, TextKind, cosine, embed_all};
use oratio_core::knowledge::{
    DocumentReader, IngestionJob, IngestionStatus, KnowledgeBase, KnowledgeError, KnowledgeScope, Passage,
    ReadingLimits, SourceDocument, chunk,
};
use oratio_core::table::{Item, Key, Table};
use tantivy::collector::TopDocs;
use tantivy::query::QueryParser;
use tantivy::schema::{Field, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions, Value};
use tantivy::{Index, IndexReader, TantivyDocument, doc};

use crate::documents::InProcessReader;

const PASSAGE_CHARS: usize = 900;
const OVERLAP_CHARS: usize = 150;
/// How deep each ranking goes before the two are fused.
const CANDIDATES: usize = 50;
/// Reciprocal rank fusion's constant (Cormack et al.): rank r scores 1 / (K + r).
const FUSION_K: f32 = 60.0;

pub struct LocalKnowledgeBase {
    root: PathBuf,
    blobs: Arc<dyn BlobStore>,
    table: Arc<dyn Table>,
    embeddings: Arc<dyn Embeddings>,
    reader: Arc<dyn DocumentReader>,
    indexes: Mutex<HashMap<PathBuf, Arc<Live>>>,
}

/// An index being searched: tantivy's reader, and the passages with their vectors.
struct Live {
    reader: IndexReader,
    index: Index,
    fields: Fields,
    passages: Vec<Passage>,
    vectors: Option<Vectors>,
}

/// Every passage's vector, in passage order, from one model.
#[derive(serde::Serialize, serde::Deserialize)]
struct VectorsHeader {
    model: String,
    dimensions: usize,
    count: usize,
}

struct Vectors {
    model: String,
    dimensions: usize,
    data: Vec<f32>,
}

impl Vectors {
    fn of(&self, passage: usize) -> &[f32] {
        &self.data[passage * self.dimensions..(passage + 1) * self.dimensions]
    }
}

struct Fields {
    document_id: Field,
    title: Field,
    location: Field,
    text: Field,
    passage: Field,
}

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let stemmed = TextOptions::default()
        .set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer("en_stem")
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        )
        .set_stored();
    let fields = Fields {
        document_id: builder.add_text_field("document_id", STRING | STORED),
        title: builder.add_text_field("title", stemmed.clone()),
        location: builder.add_text_field("location", STORED),
        text: builder.add_text_field("text", stemmed),
        passage: builder.add_u64_field("passage", STORED),
    };
    (builder.build(), fields)
}

fn backend(e: impl Into<anyhow::Error>) -> KnowledgeError {
    KnowledgeError::Backend(e.into())
}

fn job_key(scope: &KnowledgeScope, job: &IngestionJob) -> Key {
    Key::new(format!("KNOWLEDGE#{}#{}", scope.tenant, scope.agent), format!("JOB#{}", job.0))
}

impl LocalKnowledgeBase {
    pub fn new(
        root: impl Into<PathBuf>,
        blobs: Arc<dyn BlobStore>,
        table: Arc<dyn Table>,
        embeddings: Arc<dyn Embeddings>,
    ) -> Self {
        let reader = Arc::new(InProcessReader(ReadingLimits::default()));
        Self { root: root.into(), blobs, table, embeddings, reader, indexes: Mutex::new(HashMap::new()) }
    }

    /// Documents read by `reader` (a server's is a `ChildReader`) instead of in process.
    pub fn with_reader(mut self, reader: Arc<dyn DocumentReader>) -> Self {
        self.reader = reader;
        self
    }

    fn scope_dir(&self, scope: &KnowledgeScope) -> PathBuf {
        self.root.join(scope.tenant.as_str()).join(scope.agent.as_str())
    }

    async fn set_status(
        &self,
        scope: &KnowledgeScope,
        job: &IngestionJob,
        status: &IngestionStatus,
    ) -> Result<(), KnowledgeError> {
        let item = Item::from_record(job_key(scope, job), status).map_err(backend)?;
        self.table.put(item, None).await.map_err(backend)
    }

    /// Extracts, chunks and indexes every document into a fresh index directory, then
    /// makes it the live one.
    async fn build(&self, scope: &KnowledgeScope, job: &IngestionJob, documents: &[SourceDocument]) -> IngestionStatus {
        let mut extracted = Vec::new();
        for document in documents {
            let blob = match document.blob_key() {
                Ok(key) => self.blobs.get(&key).await,
                Err(e) => return IngestionStatus::Failed { reason: e.to_string() },
            };
            let bytes = match blob {
                Ok(Some(blob)) => blob.bytes,
                Ok(None) => {
                    return IngestionStatus::Failed { reason: format!("the document {} is missing", document.title) };
                }
                Err(e) => {
                    return IngestionStatus::Failed {
                        reason: format!("the document {} could not be read: {e}", document.title),
                    };
                }
            };
            match self.reader.read(&document.content_type, &document.title, bytes).await {
                Ok(sections) => extracted.push((document.clone(), sections)),
                Err(reason) => {
                    return IngestionStatus::Failed {
                        reason: format!("the document {} could not be read: {reason}", document.title),
                    };
                }
            }
        }
        let mut passages = Vec::new();
        for (document, sections) in &extracted {
            for piece in chunk(sections, PASSAGE_CHARS, OVERLAP_CHARS) {
                passages.push(Passage {
                    document_id: document.document_id.clone(),
                    title: document.title.clone(),
                    location: piece.location,
                    text: piece.text,
                    score: 0.0,
                });
            }
        }
        let vectors = self.vectors(&passages).await;
        let dir = self.scope_dir(scope);
        let job_dir = dir.join(&job.0);
        let count = passages.len() as u32;
        let written = tokio::task::spawn_blocking(move || write_index(&dir, &job_dir, &passages, vectors)).await;
        match written {
            Ok(Ok(())) => IngestionStatus::Complete { documents: documents.len() as u32, passages: Some(count) },
            Ok(Err(e)) => {
                tracing::error!(cause = %format!("{e:#}"), "building a knowledge index failed");
                IngestionStatus::Failed { reason: "the knowledge index could not be built".into() }
            }
            Err(_) => IngestionStatus::Failed { reason: "the knowledge index could not be built".into() },
        }
    }

    /// The passages' vectors, when the embedding engine answers (else the index is BM25 only).
    async fn vectors(&self, passages: &[Passage]) -> Option<Vectors> {
        let texts: Vec<String> = passages.iter().map(|p| format!("{}: {}", p.title, p.text)).collect();
        match embed_all(self.embeddings.as_ref(), &texts, TextKind::Passage).await {
            Ok(vectors) if !vectors.is_empty() => {
                let dimensions = vectors[0].len();
                if vectors.iter().any(|v| v.len() != dimensions) {
                    tracing::warn!("the embedding engine answered vectors of different sizes; indexing words only");
                    return None;
                }
                Some(Vectors { model: self.embeddings.model().to_owned(), dimensions, data: vectors.concat() })
            }
            Ok(_) => None,
            Err(e) => {
                tracing::info!(cause = %e, "no passage vectors: the index searches by words only");
                None
            }
        }
    }

    /// The live index of a scope, opened once and kept while it stays current.
    fn live(&self, scope: &KnowledgeScope) -> Result<Option<Arc<Live>>, KnowledgeError> {
        let dir = self.scope_dir(scope);
        let current = match std::fs::read_to_string(dir.join("current")) {
            Ok(name) => dir.join(name.trim()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(backend(e)),
        };
        if let Some(live) = self.indexes.lock().unwrap_or_else(|p| p.into_inner()).get(&current) {
            return Ok(Some(live.clone()));
        }
        let index = Index::open_in_dir(&current).map_err(backend)?;
        let (_, fields) = schema();
        let reader = index.reader().map_err(backend)?;
        let passages: Vec<Passage> = match std::fs::read(current.join("passages.json")) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(backend)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(backend(e)),
        };
        let vectors = read_vectors(&current.join("vectors.bin")).map_err(backend)?;
        let live = Arc::new(Live { reader, index, fields, passages, vectors });
        let mut indexes = self.indexes.lock().unwrap_or_else(|p| p.into_inner());
        indexes.retain(|path, _| path.starts_with(&self.root) && path.exists());
        indexes.insert(current, live.clone());
        Ok(Some(live))
    }
}

fn read_vectors(path: &Path) -> anyhow::Result<Option<Vectors>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let newline = bytes.iter().position(|&b| b == b'\n').ok_or_else(|| anyhow!("vectors.bin has no header"))?;
    let header: VectorsHeader = serde_json::from_slice(&bytes[..newline])?;
    let body = &bytes[newline + 1..];
    if body.len() != header.count * header.dimensions * 4 {
        return Err(anyhow!("vectors.bin is cut short"));
    }
    let data = body.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    Ok(Some(Vectors { model: header.model, dimensions: header.dimensions, data }))
}

fn write_vectors(path: &Path, vectors: &Vectors) -> anyhow::Result<()> {
    let count = vectors.data.len() / vectors.dimensions.max(1);
    let header = VectorsHeader { model: vectors.model.clone(), dimensions: vectors.dimensions, count };
    let mut bytes = serde_json::to_vec(&header)?;
    bytes.push(b'\n');
    bytes.extend(vectors.data.iter().flat_map(|x| x.to_le_bytes()));
    crate::files::write_private(path, &bytes)
}

fn write_index(dir: &Path, job_dir: &Path, passages: &[Passage], vectors: Option<Vectors>) -> anyhow::Result<()> {
    std::fs::create_dir_all(job_dir).context("creating the index directory")?;
    let (schema, f) = schema();
    let index = Index::create_in_dir(job_dir, schema).context("creating the index")?;
    let mut writer = index.writer_with_num_threads(1, 20_000_000).context("opening the index writer")?;
    for (number, passage) in passages.iter().enumerate() {
        writer.add_document(doc!(
            f.document_id => passage.document_id.clone(),
            f.title => passage.title.clone(),
            f.location => passage.location.clone(),
            f.text => passage.text.clone(),
            f.passage => number as u64,
        ))?;
    }
    writer.commit().context("committing the index")?;
    writer.wait_merging_threads().context("finishing the index")?;
    crate::files::write_private(&job_dir.join("passages.json"), &serde_json::to_vec(passages)?)?;
    if let Some(vectors) = &vectors {
        write_vectors(&job_dir.join("vectors.bin"), vectors)?;
    }
    let name =
        job_dir.file_name().and_then(|n| n.to_str()).ok_or_else(|| anyhow!("an index directory without a name"))?;
    crate::files::write_private(&dir.join("current"), name.as_bytes())?;
    // Older indexes are no longer reachable.
    for entry in std::fs::read_dir(dir)?.flatten() {
        let path = entry.path();
        if path.is_dir() && path != job_dir {
            let _ = std::fs::remove_dir_all(path);
        }
    }
    Ok(())
}

#[async_trait]
impl KnowledgeBase for LocalKnowledgeBase {
    async fn ingest(
        &self,
        scope: &KnowledgeScope,
        documents: &[SourceDocument],
    ) -> Result<IngestionJob, KnowledgeError> {
        let prefix = tenant_prefix(&scope.tenant);
        if let Some(foreign) = documents.iter().find(|d| !d.blob.starts_with(&prefix)) {
            return Err(KnowledgeError::Invalid(format!("the document {} is not the tenant's", foreign.title)));
        }
        let job = IngestionJob(ulid::Ulid::new().to_string().to_lowercase());
        self.set_status(scope, &job, &IngestionStatus::InProgress).await?;
        let status = self.build(scope, &job, documents).await;
        self.set_status(scope, &job, &status).await?;
        Ok(job)
    }

    async fn status(&self, scope: &KnowledgeScope, job: &IngestionJob) -> Result<IngestionStatus, KnowledgeError> {
        self.table
            .get(&job_key(scope, job))
            .await
            .map_err(backend)?
            .ok_or(KnowledgeError::UnknownJob)?
            .record()
            .map_err(backend)
    }

    async fn retrieve(
        &self,
        scope: &KnowledgeScope,
        query: &str,
        limit: usize,
    ) -> Result<Vec<Passage>, KnowledgeError> {
        if query.trim().is_empty() || limit == 0 {
            return Ok(vec![]);
        }
        let Some(live) = self.live(scope)? else { return Ok(vec![]) };
        let by_words = lexical(&live, query)?;
        let by_meaning = match &live.vectors {
            Some(vectors) if vectors.model == self.embeddings.model() => {
                match self.embeddings.embed(&[query.to_owned()], TextKind::Query).await {
                    Ok(mut q) => semantic(vectors, &q.remove(0)),
                    Err(e) => {
                        tracing::debug!(cause = %e, "searching by words only");
                        Vec::new()
                    }
                }
            }
            _ => Vec::new(),
        };
        Ok(fuse(&live.passages, &by_words, &by_meaning, limit))
    }

    async fn remove(&self, scope: &KnowledgeScope) -> Result<(), KnowledgeError> {
        let dir = self.scope_dir(scope);
        self.indexes.lock().unwrap_or_else(|p| p.into_inner()).retain(|path, _| !path.starts_with(&dir));
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(backend(e)),
            _ => Ok(()),
        }
    }
}

/// Passage numbers by BM25, best first.
fn lexical(live: &Live, query: &str) -> Result<Vec<usize>, KnowledgeError> {
    let searcher = live.reader.searcher();
    let f = &live.fields;
    let mut parser = QueryParser::for_index(&live.index, vec![f.title, f.text]);
    parser.set_field_boost(f.title, 1.5);
    let (query, _) = parser.parse_query_lenient(query);
    let top = searcher.search(&query, &TopDocs::with_limit(CANDIDATES)).map_err(backend)?;
    let mut ranked = Vec::with_capacity(top.len());
    for (_, address) in top {
        let document: TantivyDocument = searcher.doc(address).map_err(backend)?;
        if let Some(number) = document.get_first(f.passage).and_then(|v| v.as_u64()) {
            ranked.push(number as usize);
        }
    }
    Ok(ranked)
}

/// Passage numbers by closeness to the query's vector, best first.
fn semantic(vectors: &Vectors, query: &[f32]) -> Vec<usize> {
    let count = vectors.data.len() / vectors.dimensions.max(1);
    let mut scored: Vec<(usize, f32)> = (0..count).map(|i| (i, cosine(vectors.of(i), query))).collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    scored.into_iter().take(CANDIDATES).map(|(i, _)| i).collect()
}

/// Reciprocal rank fusion of the rankings: the passages either ranks high, best first,
/// scored by their fused score.
fn fuse(passages: &[Passage], by_words: &[usize], by_meaning: &[usize], limit: usize) -> Vec<Passage> {
    let mut scores: HashMap<usize, f32> = HashMap::new();
    for ranking in [by_words, by_meaning] {
        for (rank, &number) in ranking.iter().enumerate() {
            *scores.entry(number).or_default() += 1.0 / (FUSION_K + rank as f32 + 1.0);
        }
    }
    let mut fused: Vec<(usize, f32)> = scores.into_iter().filter(|(n, _)| *n < passages.len()).collect();
    fused.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    // No one document takes every place (a price list of a hundred rows would): at most
    // half the places, or two, per document.
    // The places left over go to the best of the rest.
    let (limit, per_document) = (limit.min(CANDIDATES), (limit / 2).max(2));
    let mut taken: HashMap<&str, usize> = HashMap::new();
    let (mut chosen, rest): (Vec<_>, Vec<_>) = fused.into_iter().partition(|(number, _)| {
        let count = taken.entry(passages[*number].document_id.as_str()).or_default();
        *count += 1;
        *count <= per_document
    });
    chosen.truncate(limit);
    chosen.extend(rest.into_iter().take(limit - chosen.len()));
    chosen.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    chosen.into_iter().map(|(number, score)| Passage { score: score * 100.0, ..passages[number].clone() }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fusion_ranks_what_both_rankings_like_first() {
        let passage = |text: &str| Passage {
            document_id: "d".into(),
            title: "t".into(),
            location: "l".into(),
            text: text.into(),
            score: 0.0,
        };
        let passages = vec![passage("a"), passage("b"), passage("c")];
        let fused = fuse(&passages, &[0, 1], &[1, 2], 3);
        let order: Vec<&str> = fused.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(order, ["b", "a", "c"]);
        assert!(fused[0].score > fused[1].score);
    }
}
