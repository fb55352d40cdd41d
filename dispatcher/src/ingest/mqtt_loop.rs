//! The MQTT loop: poll, reconnect, resubscribe; and beside it the
//! classifier: validate, hand over.
//!
//! Two tasks, so that polling never waits on validation. rumqttc's event
//! loop sends one request (an acknowledgement) per turn, and only in turns
//! where the socket has nothing to read: a poller that keeps the socket
//! drained gives the acknowledgements their turns, one that validates
//! between polls leaves the socket full and the acknowledgements behind.

use std::sync::atomic::Ordering;
use std::time::Duration;

use protocol::{RejectReason, Rejection, TopicKind, Topics};
use rumqttc::{AsyncClient, Event, EventLoop, Outgoing, Packet, Publish, QoS};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::ratelimit::{RateLimiter, Verdict};
use super::writer::Intake;
use super::{HealthChange, IngestDeps, Item};
use crate::store::IncomingEvent;
use crate::untrusted;

/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Messages polled and not yet validated. Full, the poller waits, and the
/// broker keeps the rest.
const TO_CLASSIFY: usize = 1024;

pub(crate) async fn run(
    deps: IngestDeps,
    client: AsyncClient,
    mut eventloop: EventLoop,
    intake: Intake,
    health: mpsc::UnboundedSender<HealthChange>,
    stop_intake: CancellationToken,
) {
    let topics = Topics::new(deps.settings.mqtt.topic_root.clone());
    if let Some(group) = &deps.settings.mqtt.share_group {
        tracing::warn!(
            %group,
            "mqtt.share_group is no longer used: on Mosquitto a shared subscription keeps handing a dead member its share, so alarms would wait for it; every instance now receives every event and the store stores each once (remove the setting)"
        );
    }
    let mut backoff = Duration::from_millis(100);
    let mut ever_connected = false;
    let (to_classify, polled) = mpsc::channel(TO_CLASSIFY);
    tokio::spawn(classify_loop(
        deps.clone(),
        topics.clone(),
        polled,
        intake,
        health,
    ));

    loop {
        let event = tokio::select! {
            biased;
            _ = stop_intake.cancelled() => break,
            event = eventloop.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                backoff = Duration::from_millis(100);
                deps.broker_connected.store(true, Ordering::Relaxed);
                deps.metrics.mqtt_connected.store(1, Ordering::Relaxed);
                if ever_connected {
                    deps.metrics.mqtt_reconnects.fetch_add(1, Ordering::Relaxed);
                }
                ever_connected = true;
                tracing::info!(
                    broker = %format!("{}:{}", deps.broker.host, deps.broker.port),
                    session_present = ack.session_present,
                    "connected to the MQTT broker"
                );
                // Always resubscribe: a broker that lost our session must
                // not leave us deaf. Every instance receives every event
                // on its own session, never a shared one: whichever
                // instance dies, the others already have its messages,
                // and the store's idempotency on (device, event id) stores
                // and acts on each once (docs/ARCHITECTURE.md).
                let subs = [topics.events_filter(None), topics.status_filter(None)];
                for filter in subs {
                    if let Err(e) = client.try_subscribe(filter.clone(), QoS::AtLeastOnce) {
                        tracing::error!(%filter, error = %e, "could not queue the subscription");
                    }
                }
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                for code in ack.return_codes {
                    if matches!(code, rumqttc::SubscribeReasonCode::Failure) {
                        tracing::error!(
                            "the broker refused a subscription: check its ACL lets {:?} read {}/devices/#",
                            deps.settings.mqtt.client_id,
                            topics.root()
                        );
                    }
                }
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                // The classifier outlives this loop's intake; an error
                // means it is gone and shutdown is under way.
                if to_classify.send(publish).await.is_err() {
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => {
                deps.broker_connected.store(false, Ordering::Relaxed);
                deps.metrics.mqtt_connected.store(0, Ordering::Relaxed);
                tracing::warn!(
                    error = %e,
                    retry_in = ?backoff,
                    "MQTT connection lost or refused; reconnecting"
                );
                tokio::select! {
                    _ = stop_intake.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    // Intake is over: closing the pipeline lets the classifier and the
    // writer finish what they have. Keep polling so their acknowledgements
    // reach the broker, ignoring new messages (unacknowledged, the broker
    // keeps them for next time).
    drop(to_classify);
    // The embedded broker's goodbye is a subscription to a barrier topic
    // (see `Ingest::shutdown`): the connection closes once its SUBACK is
    // read, not when it is sent. Closed with the SUBACK still unread, the
    // socket answers with a reset, which rumqttd logs as an ERROR.
    let mut barrier = None;
    loop {
        match tokio::time::timeout(Duration::from_secs(30), eventloop.poll()).await {
            Ok(Ok(Event::Outgoing(Outgoing::Subscribe(pkid)))) => barrier = Some(pkid),
            Ok(Ok(Event::Incoming(Packet::SubAck(ack)))) if Some(ack.pkid) == barrier => break,
            Ok(Ok(Event::Outgoing(Outgoing::Disconnect))) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(_)) => {}
        }
    }
    deps.broker_connected.store(false, Ordering::Relaxed);
    deps.metrics.mqtt_connected.store(0, Ordering::Relaxed);
}

/// Validates polled messages in arrival order and hands them to the
/// writer.
async fn classify_loop(
    deps: IngestDeps,
    topics: Topics,
    mut polled: mpsc::Receiver<Publish>,
    mut intake: Intake,
    health: mpsc::UnboundedSender<HealthChange>,
) {
    let mut limiter = RateLimiter::new(
        deps.settings.ingest.rate_limit_per_s,
        deps.settings.ingest.flood_sample_per_min,
    );
    let mut received: u64 = 0;
    while let Some(publish) = polled.recv().await {
        received += 1;
        if received.is_multiple_of(10_000) {
            limiter.prune(deps.clock.now());
        }
        if let Some(item) = classify(&deps, &topics, &mut limiter, &health, publish) {
            deps.metrics.ingest_queue.fetch_add(1, Ordering::Relaxed);
            if intake.push(item).await.is_err() {
                return;
            }
        }
    }
}

/// Validates one message and decides what the writer does with it.
fn classify(
    deps: &IngestDeps,
    topics: &Topics,
    limiter: &mut RateLimiter,
    health: &mpsc::UnboundedSender<HealthChange>,
    publish: Publish,
) -> Option<Item> {
    let now = deps.clock.now();
    let needs_ack = publish.qos != QoS::AtMostOnce;
    let reject = |publish: Publish, rejection: Rejection| {
        deps.metrics.reject(rejection.reason);
        // Topic, detail (it may quote the payload) and payload are the
        // sender's: escaped and cut, so they cannot forge a log line.
        tracing::warn!(
            topic = %untrusted::text(&publish.topic),
            reason = %rejection.reason,
            detail = %untrusted::text(&rejection.detail),
            payload = %untrusted::bytes(&publish.payload),
            "rejected a device message"
        );
        needs_ack.then_some(Item::AckOnly(publish))
    };

    let Some((device, kind)) = topics.parse(&publish.topic) else {
        return reject(
            publish,
            Rejection::new(RejectReason::BadTopic, "not a device topic"),
        );
    };
    let device = match device {
        Ok(d) => d,
        Err(bad) => {
            return reject(
                publish,
                Rejection::new(
                    RejectReason::BadTopic,
                    format!("malformed device id {bad:?}"),
                ),
            );
        }
    };
    match kind {
        TopicKind::Events => {
            deps.metrics.events_received.fetch_add(1, Ordering::Relaxed);
            let message = match protocol::parse_event(&device, &publish.payload, now) {
                Ok(m) => m,
                Err(rejection) => return reject(publish, rejection),
            };
            if let Some(change) = deps.liveness.on_event(&device, now) {
                let _ = health.send(change);
            }
            let verdict = limiter.check(&device, &message.event_type, now);
            if verdict.is_excess() {
                deps.metrics.reject(RejectReason::RateLimited);
            }
            match verdict {
                Verdict::Act => {}
                Verdict::Sample => tracing::debug!(
                    %device,
                    event = %message.event_type,
                    "a flooding device's excess event kept as part of its sample"
                ),
                // Counted above; acknowledged so the broker forgets it,
                // and kept nowhere: this is what bounds a flood's cost.
                Verdict::Drop => {
                    deps.metrics
                        .events_flood_dropped
                        .fetch_add(1, Ordering::Relaxed);
                    return needs_ack.then_some(Item::AckOnly(publish));
                }
            }
            let rate_limited = verdict.is_excess();
            let event = IncomingEvent {
                device_id: device,
                message,
                received_at: now,
                rate_limited,
            };
            Some(Item::Event(publish, event))
        }
        TopicKind::Status => {
            deps.metrics.status_received.fetch_add(1, Ordering::Relaxed);
            let status = match protocol::parse_status(&publish.payload) {
                Ok(s) => s,
                Err(rejection) => return reject(publish, rejection),
            };
            // A retained status is as old as its timestamp, not as new as
            // our subscription.
            let heard_at = if publish.retain {
                status.ts.map_or(now, |ts| ts.min(now))
            } else {
                now
            };
            if let Some(change) = deps.liveness.on_status(&device, &status, heard_at) {
                let _ = health.send(change);
            }
            needs_ack.then_some(Item::AckOnly(publish))
        }
        // Our own feedback to devices; nothing to ingest.
        TopicKind::Commands => needs_ack.then_some(Item::AckOnly(publish)),
    }
}
