//! Voice workers on one machine: each call's worker is a task of this process (in AWS, an
//! asynchronous invocation of the voice worker Lambda).

use async_trait::async_trait;
use oratio_core::ids::ConnectionId;
use oratio_core::voice::relay::{VoiceWorkers, Worker};

pub struct TaskWorkers(pub Worker);

#[async_trait]
impl VoiceWorkers for TaskWorkers {
    async fn start(&self, inbox: &ConnectionId) -> anyhow::Result<()> {
        let (worker, inbox) = (self.0.clone(), inbox.clone());
        tokio::spawn(async move { worker.serve(inbox, None).await });
        Ok(())
    }
}
