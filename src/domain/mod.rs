//! The domain leaf: the vocabulary every other module speaks and that imports nothing of ours.
//!
//! - [`ids`]: typed identifiers, validated on every path in.
//! - [`role`]: roles in a consultation and on the server, and the permission table.
//! - [`member`]: who is acting inside a live room.
//! - [`organisation`]: institutions, departments, a clinician's profile, and how a room relates
//!   to an account.
//! - [`document`]: the kinds of shared document.
//! - [`record`]: the kinds of clinical record and a record's statuses (its life as a state
//!   machine).
//! - [`referral`]: a consultation request to another department or specialist: its urgency,
//!   proposed times and target, and its life as a state machine (who may take which step when).
//! - [`consent`]: what a patient may agree to, in the words shown, and their version.
//! - [`clock`]: wall-clock time as rows and tokens record it.
//! - [`time_zone`]: the institution's time zone, in which times are shown to people.
//! - [`hex`]: how digests are written.
//! - [`text`]: what a name shown to people may contain.
//! - [`invitation`]: invitations' short codes, windows, uses and states.
//! - [`webhook`]: outgoing webhooks' events, what endpoints may be, the retry schedule.
//!
//! Storage sits below the services and reads and writes these types; rooms, documents and
//! records decide with them; signaling and HTTP convert them to and from wire types at the edge.
//! `tests/architecture.rs` fails if a module here imports another of the crate's modules.

pub mod clock;
pub mod consent;
pub mod document;
pub mod hex;
pub mod ids;
// Invitations: short codes, windows, uses.
pub mod invitation;
pub mod member;
pub mod organisation;
pub mod record;
pub mod referral;
pub mod role;
pub mod text;
pub mod time_zone;
// Outgoing webhooks: events, endpoints' rules, the retry schedule.
pub mod webhook;
