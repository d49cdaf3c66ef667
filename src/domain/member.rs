//! Who is acting inside a live room: the participant, the invite they came with, their role in
//! this consultation and the name they are shown under. The room answers with a `Member` when
//! an HTTP call presents a participant's access token; documents and records decide with it.

use super::ids::{InviteId, ParticipantId, UserId};
use super::role::Role;

/// Who is acting, as the room knows them.
#[derive(Debug, Clone)]
pub struct Member {
    pub participant: ParticipantId,
    pub invite: InviteId,
    pub role: Role,
    pub name: String,
    /// The clinician account behind a care-team seat; `None` for whoever came with a link.
    /// Only an account can sign a record.
    pub account: Option<UserId>,
}
