//! The event log on partition 0 of a Fluvio topic.

use crate::batch::{self, DedupeIndex};
use crate::codec;
use crate::config::FluvioLogConfig;
use crate::error::FluvioLogError;
use crate::offsets::{self, PartitionBounds, ReadRange};
use copycar_events::{Event, EventSink, EventSource, ItemResult, StoredEvent, random_event_id};
use fluvio::consumer::{ConsumerConfigExt, RetryMode};
use fluvio::dataplane::link::ErrorCode;
use fluvio::dataplane::record::ReplicaKey;
use fluvio::metadata::partition::{PartitionResolution, PartitionSpec};
use fluvio::metadata::spu::SpuSpec;
use fluvio::metadata::topic::TopicSpec;
use fluvio::{
    DeliverySemantic, Fluvio, FluvioClusterConfig, Isolation, Offset, RetryPolicy, RetryStrategy,
    TopicProducerConfigBuilder, TopicProducerPool,
};
use fluvio_future::task::run_block_on;
use fluvio_future::timer::sleep;
use fluvio_socket::{ClientConfig, MultiplexerSocket, VersionedSerialSocket};
use fluvio_spu_schema::server::fetch_offset::FetchOffsetsRequest;
use futures_util::StreamExt;
use futures_util::future::{Either, select};
use std::future::Future;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The only partition the log uses, so that its offsets are a total order.
const PARTITION: u32 = 0;

/// The number of records each read of the index rebuild fetches.
const REBUILD_CHUNK: usize = 10_000;

/// The number of new consumer streams one read opens in a row without
/// getting a record before it returns what it has.
const MAX_READ_RESTARTS: u32 = 3;

/// The pause between checks for a new partition to come online.
const PARTITION_POLL: Duration = Duration::from_millis(100);

/// An event log on partition 0 of a Fluvio topic.
///
/// It keeps the semantics of the embedded `EventLog`. Each event is validated
/// on its own, an event without an id gets a random one, (tenant, event_id)
/// is deduplicated and `received_at` is set on append. Offsets are returned
/// only after the SPU acknowledged the records.
///
/// The dedupe index assumes a single writer. It is rebuilt from the whole
/// topic on open and then updated only by this instance's appends. An event
/// that another process or another `FluvioLog` on the same topic appends is
/// not in it, so a later append of the same (tenant, event_id) here writes it
/// again. Run one writer per topic.
///
/// The methods block the calling thread while they drive the fluvio client,
/// which runs on the smol stack rather than tokio. Async code under tokio
/// should call them in `tokio::task::spawn_blocking`.
pub struct FluvioLog {
    config: FluvioLogConfig,
    client: Fluvio,
    producer: TopicProducerPool,
    /// The `host:port` of the SPU that leads partition 0, looked up on first
    /// use and again after a failed connection.
    leader_address: Mutex<Option<String>>,
    /// Held for the whole of an append, so appends run one at a time.
    index: Mutex<DedupeIndex>,
}

impl FluvioLog {
    /// Connects to the cluster, checks or creates the topic, and rebuilds the
    /// dedupe index by reading the topic from its oldest retained record.
    pub fn open(config: FluvioLogConfig) -> Result<Self, FluvioLogError> {
        Self::block_on(Self::open_async(config))
    }

    /// Runs `future` to completion on the calling thread.
    ///
    /// [`EventSink`] and [`EventSource`] are synchronous. The fluvio client
    /// is async on the smol stack (async-io, async-global-executor), not on
    /// tokio, so a tokio `Handle::block_on` cannot drive it. `run_block_on`
    /// polls the future on this thread, while the client's background tasks
    /// (socket dispatchers, metadata sync) run on the async-global-executor
    /// threads. It works from any thread, including a tokio worker, but there
    /// it stalls the worker for the whole call, so async callers should use
    /// `tokio::task::spawn_blocking`.
    fn block_on<T>(future: impl Future<Output = T>) -> T {
        run_block_on(future)
    }

    async fn open_async(config: FluvioLogConfig) -> Result<Self, FluvioLogError> {
        let cluster = FluvioClusterConfig::new(config.endpoint.clone());
        let client = with_timeout(
            config.connect_timeout,
            Fluvio::connect_with_config(&cluster),
        )
        .await
        .ok_or_else(|| FluvioLogError::ConnectTimedOut {
            endpoint: config.endpoint.clone(),
            timeout: config.connect_timeout,
        })?
        .map_err(|error| FluvioLogError::Connect {
            endpoint: config.endpoint.clone(),
            source: error.into(),
        })?;
        ensure_topic(&client, &config).await?;

        let producer = create_producer(&client, &config).await?;
        let log = FluvioLog {
            config,
            client,
            producer,
            leader_address: Mutex::new(None),
            index: Mutex::new(DedupeIndex::new()),
        };
        let index = log.rebuild_index().await?;
        tracing::info!(
            topic = %log.config.topic,
            endpoint = %log.config.endpoint,
            indexed = index.len(),
            "opened Fluvio event log"
        );
        *lock(&log.index) = index;
        Ok(log)
    }

    /// Returns the topic name.
    pub fn topic(&self) -> &str {
        &self.config.topic
    }

    /// Returns the retained offsets of partition 0 as reported by its leader.
    pub fn bounds(&self) -> Result<PartitionBounds, FluvioLogError> {
        Self::block_on(self.fetch_bounds())
    }

    /// Validates and produces `events`, and returns after the SPU has
    /// acknowledged every produced record.
    ///
    /// Returns one result per input, in order. An event without an id gets a
    /// random one. A (tenant, event_id) already in the index, or earlier in
    /// the same batch, returns the earlier offset and is not produced again.
    /// A produce failure fails the whole call, but the records the SPU did
    /// acknowledge enter the index, so a retry of the batch reports them as
    /// duplicates instead of writing them twice.
    pub fn append_batch(&self, events: Vec<Event>) -> Result<Vec<ItemResult>, FluvioLogError> {
        let mut index = lock(&self.index);
        let plan = batch::plan_batch(events, &index, now_millis(), random_event_id)
            .map_err(FluvioLogError::EventId)?;
        if plan.records.is_empty() {
            return Ok(plan.into_results(&[]));
        }

        let (acknowledged, failure) = Self::block_on(self.produce(&plan.records));
        for (record, offset) in plan.records.iter().zip(&acknowledged) {
            index
                .entry((record.tenant.clone(), record.event_id.clone()))
                .or_insert(*offset);
        }
        if let Some(error) = failure {
            tracing::warn!(
                topic = %self.config.topic,
                acknowledged = acknowledged.len(),
                records = plan.records.len(),
                %error,
                "produce failed"
            );
            return Err(error);
        }
        Ok(plan.into_results(&acknowledged))
    }

    /// Returns up to `max` events in offset order from `offset` on. An
    /// `offset` that retention deleted starts at the oldest retained record;
    /// one at or past the end returns an empty list without waiting.
    pub fn read_from(&self, offset: u64, max: usize) -> Result<Vec<StoredEvent>, FluvioLogError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        Self::block_on(self.read_async(offset, max))
    }

    /// Sends `records` to partition 0 and waits for their acknowledgements.
    ///
    /// Returns the acknowledged offsets of the records before the first
    /// failure, in order, and that failure, if any.
    async fn produce(&self, records: &[batch::NewRecord]) -> (Vec<u64>, Option<FluvioLogError>) {
        let topic = &self.config.topic;
        let timeout = self.config.write_timeout;
        let deadline = Instant::now() + timeout;
        let timed_out = || FluvioLogError::WriteTimedOut {
            topic: topic.clone(),
            timeout,
        };

        let mut outputs = Vec::with_capacity(records.len());
        let mut failure = None;
        for record in records {
            let send = self.producer.send(record.key.clone(), record.value.clone());
            match with_timeout(remaining(deadline), send).await {
                Some(Ok(output)) => outputs.push(output),
                Some(Err(error)) => {
                    failure = Some(FluvioLogError::client("produce a record", topic, error));
                    break;
                }
                None => {
                    failure = Some(timed_out());
                    break;
                }
            }
        }
        // `flush` sends the records still queued in the producer's batches,
        // also after a failed send, so that the records sent before it get
        // their acknowledgements below.
        match with_timeout(remaining(deadline), self.producer.flush()).await {
            Some(Ok(())) => {}
            Some(Err(error)) => {
                failure.get_or_insert(FluvioLogError::client("flush the producer", topic, error));
            }
            None => {
                failure.get_or_insert_with(timed_out);
            }
        }

        let mut acknowledged = Vec::with_capacity(outputs.len());
        for output in outputs {
            let metadata = match with_timeout(remaining(deadline), output.wait()).await {
                Some(Ok(metadata)) => metadata,
                Some(Err(error)) => {
                    failure.get_or_insert(FluvioLogError::client(
                        "wait for the acknowledgement of a record",
                        topic,
                        error,
                    ));
                    break;
                }
                None => {
                    failure.get_or_insert_with(timed_out);
                    break;
                }
            };
            if metadata.partition_id() != PARTITION {
                failure.get_or_insert(FluvioLogError::UnexpectedPartition {
                    topic: topic.clone(),
                    partition: metadata.partition_id(),
                });
                break;
            }
            match offsets::from_fluvio_offset(metadata.offset()) {
                Ok(offset) => acknowledged.push(offset),
                Err(source) => {
                    failure.get_or_insert(FluvioLogError::Offset {
                        topic: topic.clone(),
                        source,
                    });
                    break;
                }
            }
        }
        if failure.is_some() {
            // The producer keeps a partition's error until it is cleared and
            // rejects later sends to that partition until then.
            self.producer.clear_errors().await;
        }
        (acknowledged, failure)
    }

    async fn read_async(
        &self,
        offset: u64,
        max: usize,
    ) -> Result<Vec<StoredEvent>, FluvioLogError> {
        let mut bounds = self.fetch_bounds().await?;
        let mut events = Vec::new();
        let mut next = offset;
        let mut stalls = 0;
        while let Some(range) = offsets::plan_read(next, bounds, max - events.len()) {
            let before = events.len();
            let end = self.read_range(range, &mut events).await?;
            if events.len() > before {
                stalls = 0;
            } else {
                stalls += 1;
            }
            match end {
                StreamEnd::Complete => break,
                // NOTE: the fluvio 0.50.1 client treats every batch of a
                // stream fetch response as complete, but the SPU cuts the
                // last batch at the fetch size limit (about 1 MiB), so the
                // records after the cut are skipped. Reading 3,000 records
                // of about 400 bytes jumped from offset 2546 to 2550 in one
                // run and from 2547 to 2570 in another. A new stream from
                // the first missing offset returns them, so the read goes on
                // from there. A gap at the start of a new stream means the
                // records do not exist.
                StreamEnd::Gap { expected, found } => {
                    if stalls > 0 {
                        return Err(FluvioLogError::UnexpectedOffset {
                            topic: self.config.topic.clone(),
                            expected,
                            found,
                        });
                    }
                    tracing::debug!(
                        topic = %self.config.topic,
                        expected,
                        found,
                        "consumer stream skipped records; reading again from the first one"
                    );
                    next = expected;
                }
                // The stream stopped before the end offset that the offsets
                // request reported, so the read goes on with a new stream,
                // unless this one returned nothing.
                StreamEnd::EndedEarly { next_offset } => {
                    if stalls > 0 {
                        break;
                    }
                    next = next_offset;
                }
                // Retention deleted the start between the offsets request
                // and the fetch. The read starts again at the oldest retained
                // record, unless events were already read: skipping ahead
                // from them would leave a hole in the result.
                StreamEnd::Evicted { next_available } => {
                    if !events.is_empty() || stalls > MAX_READ_RESTARTS {
                        break;
                    }
                    bounds.start = next_available;
                    bounds.end = bounds.end.max(next_available);
                    next = next.max(next_available);
                }
            }
            if stalls > MAX_READ_RESTARTS {
                break;
            }
        }
        Ok(events)
    }

    /// Reads up to `range.count` records from `range.start`, which the
    /// offsets request reported as committed, and appends them to `events`.
    async fn read_range(
        &self,
        range: ReadRange,
        events: &mut Vec<StoredEvent>,
    ) -> Result<StreamEnd, FluvioLogError> {
        let topic = &self.config.topic;
        let start =
            offsets::to_fluvio_offset(range.start).map_err(|source| FluvioLogError::Offset {
                topic: topic.clone(),
                source,
            })?;
        let start = Offset::absolute(start)
            .map_err(|error| FluvioLogError::client("set the read offset", topic, error))?;
        let config = ConsumerConfigExt::builder()
            .topic(topic.clone())
            .partition(PARTITION)
            .offset_start(start)
            // Stop at the end offset the partition had when the stream
            // started, rather than wait for new records.
            .disable_continuous(true)
            .isolation(Isolation::ReadCommitted)
            .retry_mode(RetryMode::Disabled)
            .build()
            .map_err(|error| FluvioLogError::client("configure the consumer", topic, error))?;
        let timeout = self.config.read_timeout;
        let mut stream = with_timeout(timeout, self.client.consumer_with_config(config))
            .await
            .ok_or_else(|| FluvioLogError::ReadTimedOut {
                topic: topic.clone(),
                offset: range.start,
                timeout,
            })?
            .map_err(|error| FluvioLogError::client("open a consumer stream", topic, error))?;

        for expected in range.start..range.start + range.count as u64 {
            let next = with_timeout(timeout, stream.next()).await.ok_or_else(|| {
                FluvioLogError::ReadTimedOut {
                    topic: topic.clone(),
                    offset: expected,
                    timeout,
                }
            })?;
            let record = match next {
                None => {
                    return Ok(StreamEnd::EndedEarly {
                        next_offset: expected,
                    });
                }
                Some(Ok(record)) => record,
                Some(Err(ErrorCode::OffsetEvicted { next_available, .. })) => {
                    let next_available =
                        offsets::from_fluvio_offset(next_available).map_err(|source| {
                            FluvioLogError::Offset {
                                topic: topic.clone(),
                                source,
                            }
                        })?;
                    return Ok(StreamEnd::Evicted { next_available });
                }
                Some(Err(code)) => {
                    return Err(FluvioLogError::Server {
                        action: "read records",
                        topic: topic.clone(),
                        code: code.to_string(),
                    });
                }
            };
            if u64::try_from(record.offset()).ok() != Some(expected) {
                return Ok(StreamEnd::Gap {
                    expected,
                    found: record.offset(),
                });
            }
            let event = codec::decode_record(record.key(), record.value()).map_err(|source| {
                FluvioLogError::Decode {
                    topic: topic.clone(),
                    offset: expected,
                    source: Box::new(source),
                }
            })?;
            events.push(StoredEvent {
                offset: expected,
                event,
            });
        }
        Ok(StreamEnd::Complete)
    }

    /// Reads every retained record and maps each (tenant, event_id) to the
    /// offset of its first record.
    async fn rebuild_index(&self) -> Result<DedupeIndex, FluvioLogError> {
        let mut index = DedupeIndex::new();
        let mut next = 0;
        loop {
            let events = self.read_async(next, REBUILD_CHUNK).await?;
            let Some(last) = events.last() else {
                break;
            };
            next = last.offset + 1;
            for stored in events {
                let Some(event_id) = stored.event.event_id else {
                    continue;
                };
                // A producer retry can write a record twice. The first offset
                // wins, as it did on the append that wrote it.
                index
                    .entry((stored.event.tenant, event_id))
                    .or_insert(stored.offset);
            }
        }
        Ok(index)
    }

    /// Asks the leader of partition 0 for its start and end offsets.
    async fn fetch_bounds(&self) -> Result<PartitionBounds, FluvioLogError> {
        let topic = &self.config.topic;
        let timeout = self.config.read_timeout;
        let fetched = with_timeout(timeout, self.fetch_bounds_once()).await;
        let result = fetched.unwrap_or_else(|| {
            Err(FluvioLogError::OffsetsTimedOut {
                topic: topic.clone(),
                timeout,
            })
        });
        if result.is_err() {
            // The leader may have moved, so the next call looks it up again.
            *lock(&self.leader_address) = None;
        }
        result
    }

    async fn fetch_bounds_once(&self) -> Result<PartitionBounds, FluvioLogError> {
        let topic = &self.config.topic;
        let address = self.leader_address().await?;
        let socket = ClientConfig::with_addr(address.clone())
            .connect()
            .await
            .map_err(|error| {
                FluvioLogError::client("connect to the partition leader", topic, error)
            })?;
        let (socket, config, versions) = socket.split();
        let socket =
            VersionedSerialSocket::new(MultiplexerSocket::shared(socket), config, versions);
        let response = socket
            .send_receive(FetchOffsetsRequest::new(topic.clone(), PARTITION))
            .await
            .map_err(|error| FluvioLogError::client("fetch partition offsets", topic, error))?;
        let replica = ReplicaKey::new(topic.clone(), PARTITION);
        let Some(partition) = response.find_partition(&replica) else {
            return Err(FluvioLogError::Server {
                action: "fetch partition offsets",
                topic: topic.clone(),
                code: format!("no offsets for partition {PARTITION} from the SPU at {address}"),
            });
        };
        if partition.error_code != ErrorCode::None {
            return Err(FluvioLogError::Server {
                action: "fetch partition offsets",
                topic: topic.clone(),
                code: partition.error_code.to_string(),
            });
        }
        PartitionBounds::from_fluvio(partition.start_offset, partition.last_stable_offset).map_err(
            |source| FluvioLogError::Offset {
                topic: topic.clone(),
                source,
            },
        )
    }

    /// Returns the public address of the SPU that leads partition 0.
    async fn leader_address(&self) -> Result<String, FluvioLogError> {
        if let Some(address) = lock(&self.leader_address).clone() {
            return Ok(address);
        }
        let topic = &self.config.topic;
        let admin = self.client.admin().await;
        let name = ReplicaKey::new(topic.clone(), PARTITION).to_string();
        let partitions = admin
            .list::<PartitionSpec, String>(vec![name.clone()])
            .await
            .map_err(|error| FluvioLogError::client("look up partition 0", topic, error))?;
        let Some(partition) = partitions.into_iter().find(|p| p.name == name) else {
            return Err(FluvioLogError::Server {
                action: "look up partition 0",
                topic: topic.clone(),
                code: format!("partition {name} not found"),
            });
        };

        let leader = partition.spec.leader;
        let spus = admin
            .all::<SpuSpec>()
            .await
            .map_err(|error| FluvioLogError::client("look up the SPUs", topic, error))?;
        let Some(spu) = spus.into_iter().find(|spu| spu.spec.id == leader) else {
            return Err(FluvioLogError::Server {
                action: "look up the partition leader",
                topic: topic.clone(),
                code: format!("SPU {leader} that leads partition 0 is not registered"),
            });
        };

        let address = spu.spec.public_endpoint.addr();
        *lock(&self.leader_address) = Some(address.clone());
        Ok(address)
    }
}

impl EventSink for FluvioLog {
    type Error = FluvioLogError;

    fn append_batch(&self, events: Vec<Event>) -> Result<Vec<ItemResult>, FluvioLogError> {
        FluvioLog::append_batch(self, events)
    }
}

impl EventSource for FluvioLog {
    type Error = FluvioLogError;

    fn read_from(&self, offset: u64, max: usize) -> Result<Vec<StoredEvent>, FluvioLogError> {
        FluvioLog::read_from(self, offset, max)
    }
}

/// The end state of a consumer stream for one planned range.
enum StreamEnd {
    /// Every record of the range was read.
    Complete,
    /// The stream ended before the range did; `next_offset` is the first
    /// record not read.
    EndedEarly { next_offset: u64 },
    /// The stream returned offset `found` where `expected` was next.
    Gap { expected: u64, found: i64 },
    /// The SPU reported the start offset as deleted by retention.
    Evicted { next_available: u64 },
}

/// Checks that the topic exists with one partition, creating it when it is
/// missing and the config allows that, and waits for partition 0 to be
/// online.
async fn ensure_topic(client: &Fluvio, config: &FluvioLogConfig) -> Result<(), FluvioLogError> {
    let topic = &config.topic;
    let admin = client.admin().await;
    let existing = admin
        .list::<TopicSpec, String>(vec![topic.clone()])
        .await
        .map_err(|error| FluvioLogError::client("look up the topic", topic, error))?;
    match existing.into_iter().find(|t| &t.name == topic) {
        Some(found) => {
            let partitions = found.spec.partitions();
            if partitions != 1 {
                return Err(FluvioLogError::TopicPartitions {
                    topic: topic.clone(),
                    partitions,
                });
            }
        }
        None if config.create_topic => {
            let spec = TopicSpec::new_computed(1, 1, None);
            admin
                .create(topic.clone(), false, spec)
                .await
                .map_err(|error| FluvioLogError::client("create the topic", topic, error))?;
            tracing::info!(%topic, "created Fluvio topic with one partition");
        }
        None => {
            return Err(FluvioLogError::TopicNotFound {
                topic: topic.clone(),
                endpoint: config.endpoint.clone(),
            });
        }
    }

    let name = ReplicaKey::new(topic.clone(), PARTITION).to_string();
    let deadline = Instant::now() + config.connect_timeout;
    loop {
        let partitions = admin
            .list::<PartitionSpec, String>(vec![name.clone()])
            .await
            .map_err(|error| FluvioLogError::client("look up partition 0", topic, error))?;
        let online = partitions
            .iter()
            .any(|p| p.name == name && p.status.resolution == PartitionResolution::Online);
        if online {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(FluvioLogError::PartitionNotReady {
                topic: topic.clone(),
                timeout: config.connect_timeout,
            });
        }
        sleep(PARTITION_POLL).await;
    }
}

async fn create_producer(
    client: &Fluvio,
    config: &FluvioLogConfig,
) -> Result<TopicProducerPool, FluvioLogError> {
    let topic = &config.topic;
    // Retries stay within the write timeout, which `produce` also enforces
    // over the whole batch.
    let retry = RetryPolicy {
        max_retries: 4,
        initial_delay: Duration::from_millis(20),
        max_delay: Duration::from_secs(1),
        timeout: config.write_timeout,
        strategy: RetryStrategy::ExponentialBackoff,
    };
    let producer_config = TopicProducerConfigBuilder::default()
        .set_specific_partitioner(PARTITION)
        // The SPU acknowledges a record once it is committed to the in-sync
        // replicas, not only written on the leader.
        .isolation(Isolation::ReadCommitted)
        .delivery_semantic(DeliverySemantic::AtLeastOnce(retry))
        .build()
        .map_err(|error| FluvioLogError::client("configure the producer", topic, error))?;
    client
        .topic_producer_with_config(topic.clone(), producer_config)
        .await
        .map_err(|error| FluvioLogError::client("create the producer", topic, error))
}

/// Runs `future` until it completes or `duration` passes; `None` means it
/// timed out.
async fn with_timeout<T>(duration: Duration, future: impl Future<Output = T>) -> Option<T> {
    let future = std::pin::pin!(future);
    let timer = std::pin::pin!(sleep(duration));
    match select(future, timer).await {
        Either::Left((value, _)) => Some(value),
        Either::Right(((), _)) => None,
    }
}

fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each guarded value is replaced whole or updated by one insert, so a
    // holder that panicked left it consistent.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn now_millis() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}
