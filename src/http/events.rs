//! Live notifications to a signed-in clinician's console (`GET /api/v1/events`): server-sent
//! events from `crate::notifications`, and who a consultation request's steps concern.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;

use super::AppState;
use super::api::Clinician;
use super::error::ApiError;
use crate::domain::clock::now_unix;
use crate::domain::ids::UserId;
use crate::notifications::{Event, SubscribeError};
use crate::storage::{DirectoryQuery, ReferralRow};

/// Most clinicians one department's inbox notifies.
const MAX_DEPARTMENT_RECIPIENTS: i64 = 500;

/// The stream of events for the caller's account. It ends when the session token presented
/// expires (the console reconnects with its renewed one), so a signed-out session's stream
/// does not outlive it by more than a token's life.
pub async fn stream(
    State(state): State<AppState>,
    who: Clinician,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    if !who.0.role.is_clinician() {
        return Err(who.refuse(&state, "not_a_clinician", "notifications").await);
    }
    let subscription = state
        .notifications
        .subscribe(&who.0.id)
        .map_err(|e: SubscribeError| ApiError::LimitReached {
            limit: "event_streams",
            message: e.to_string(),
        })?;
    let (events, guard) = subscription.into_parts();
    let until = who.1.idle_expires_at.min(who.1.expires_at);
    let left = Duration::from_secs(u64::try_from(until - now_unix()).unwrap_or(0));
    // The stream owns the subscription: when the console goes, the body is dropped and with it
    // the registration, at once.
    let state = (events, guard, Box::pin(tokio::time::sleep(left)));
    let stream =
        futures_util::stream::unfold(state, |(mut events, guard, mut deadline)| async move {
            loop {
                tokio::select! {
                    _ = &mut deadline => return None,
                    next = events.recv() => {
                        let Ok(data) = serde_json::to_string(&next?) else { continue };
                        let item = Ok(SseEvent::default().data(data));
                        return Some((item, (events, guard, deadline)));
                    }
                }
            }
        });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(20))))
}

/// Those a request concerns, but `actor`: the requester, the receiving clinician or the named
/// specialist, and, while nobody on the receiving side has it, the department's clinicians.
pub async fn concerned(state: &AppState, r: &ReferralRow, actor: &UserId) -> Vec<UserId> {
    let mut users = vec![r.requester_id.clone()];
    users.extend(r.receiver_id.clone());
    users.extend(r.target.specialist().cloned());
    // A request to the department as a whole, or one it covers for an away specialist
    // (`Referrals::covered`): its clinicians see it in the department's box.
    let department_box = (r.receiver_id.is_none() && r.target.specialist().is_none())
        || match super::referrals::service(state).covered(r).await {
            Ok(covered) => covered,
            Err(e) => {
                tracing::warn!(error = %e, "a request's cover not read for a notification");
                false
            }
        };
    if department_box {
        let department = r.target.department();
        match state
            .db
            .directory(&DirectoryQuery {
                department: Some(department),
                limit: MAX_DEPARTMENT_RECIPIENTS,
                ..DirectoryQuery::default()
            })
            .await
        {
            Ok(members) => users.extend(members.into_iter().map(|u| u.id)),
            Err(e) => tracing::warn!(error = %e, "department not read for a notification"),
        }
    }
    users.sort();
    users.dedup();
    users.retain(|u| u != actor);
    users
}

/// Tells the others on a request that the patient's consent to sharing its documents was
/// recorded or withdrawn (not a step: the request's state is unchanged).
pub async fn referral_consent(state: &AppState, r: &ReferralRow, actor: &UserId, in_force: bool) {
    let users = concerned(state, r, actor).await;
    let event = Event::ReferralConsent {
        referral_id: r.id.clone(),
        in_force,
    };
    state.notifications.publish(&users, event);
}

/// Tells those a request concerns what happened to it: `arrived` when it has just reached the
/// receiving side (created or forwarded), news to that side; its requester and everyone else
/// on it are told of the step.
pub async fn referral_step(state: &AppState, r: &ReferralRow, actor: &UserId, arrived: bool) {
    let users = concerned(state, r, actor).await;
    let changed = Event::ReferralChanged {
        referral_id: r.id.clone(),
        state: r.state.as_str(),
    };
    if !arrived {
        state.notifications.publish(&users, changed);
        return;
    }
    let (requester, receiving): (Vec<UserId>, Vec<UserId>) =
        users.into_iter().partition(|u| *u == r.requester_id);
    state.notifications.publish(
        &receiving,
        Event::ReferralReceived {
            referral_id: r.id.clone(),
            urgency: r.urgency.as_str(),
        },
    );
    state.notifications.publish(&requester, changed);
}
