//! Every transport of one media worker, in a slab.
//!
//! The forwarding path addresses transports by [`TransportKey`], a small copyable index, so a
//! packet's walk over its room's members hashes nothing and allocates nothing; participant ids
//! (strings) are looked up once, where a command from a room arrives.

use std::collections::HashMap;

use super::Transport;
use crate::domain::ids::ParticipantId;

/// A transport's place in the table. A removed transport's key never finds the transport that
/// reuses its slot (the generation differs), so keys left in queues and timers go stale
/// harmlessly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TransportKey {
    index: u32,
    generation: u32,
}

struct Slot {
    generation: u32,
    transport: Option<Transport>,
}

#[derive(Default)]
pub struct Transports {
    slots: Vec<Slot>,
    /// Empty slots, reused before the table grows.
    free: Vec<u32>,
    by_id: HashMap<ParticipantId, TransportKey>,
}

impl Transports {
    /// Adds a transport; its participant must not have one already (the caller checks).
    pub fn insert(&mut self, transport: Transport) -> TransportKey {
        let id = transport.id.clone();
        let key = match self.free.pop() {
            Some(index) => {
                let slot = &mut self.slots[index as usize];
                slot.transport = Some(transport);
                TransportKey {
                    index,
                    generation: slot.generation,
                }
            }
            None => {
                // More than 2^32 transports on one worker cannot happen (memory runs out first).
                let index = u32::try_from(self.slots.len()).expect("transport table full");
                self.slots.push(Slot {
                    generation: 0,
                    transport: Some(transport),
                });
                TransportKey {
                    index,
                    generation: 0,
                }
            }
        };
        self.by_id.insert(id, key);
        key
    }

    pub fn remove(&mut self, key: TransportKey) -> Option<Transport> {
        let slot = self.slots.get_mut(key.index as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        let transport = slot.transport.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(key.index);
        self.by_id.remove(&transport.id);
        Some(transport)
    }

    pub fn get(&self, key: TransportKey) -> Option<&Transport> {
        let slot = self.slots.get(key.index as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        slot.transport.as_ref()
    }

    pub fn get_mut(&mut self, key: TransportKey) -> Option<&mut Transport> {
        let slot = self.slots.get_mut(key.index as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        slot.transport.as_mut()
    }

    pub fn key_of(&self, id: &ParticipantId) -> Option<TransportKey> {
        self.by_id.get(id).copied()
    }

    pub fn by_id(&self, id: &ParticipantId) -> Option<&Transport> {
        self.get(self.key_of(id)?)
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Rebuilds the id index and the free list from the slots, which are the truth: after a
    /// panic (`containment.rs`) an insert or removal may have been cut off between them.
    pub fn repair(&mut self) {
        self.by_id.clear();
        self.free.clear();
        for (index, slot) in self.slots.iter().enumerate() {
            let key = TransportKey {
                index: index as u32,
                generation: slot.generation,
            };
            match &slot.transport {
                Some(t) => {
                    self.by_id.insert(t.id.clone(), key);
                }
                None => self.free.push(index as u32),
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (TransportKey, &Transport)> {
        self.slots.iter().enumerate().filter_map(|(index, slot)| {
            let key = TransportKey {
                index: index as u32,
                generation: slot.generation,
            };
            slot.transport.as_ref().map(|t| (key, t))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::domain::ids::RoomId;
    use crate::sfu::PublishKinds;

    fn transport() -> Transport {
        Transport::new(
            Instant::now(),
            RoomId::generate(),
            ParticipantId::generate(),
            PublishKinds::default(),
            true,
        )
    }

    #[test]
    fn a_removed_transports_key_never_finds_the_one_that_reuses_its_slot() {
        let mut table = Transports::default();
        let a = table.insert(transport());
        let a_id = table.get(a).unwrap().id.clone();
        assert_eq!(table.key_of(&a_id), Some(a));
        assert_eq!(table.remove(a).unwrap().id, a_id);
        assert!(table.key_of(&a_id).is_none());
        let b = table.insert(transport());
        assert_eq!(table.len(), 1);
        assert!(table.get(a).is_none(), "stale key");
        assert!(table.remove(a).is_none(), "stale key");
        assert!(table.get(b).is_some());
        assert_eq!(table.iter().map(|(k, _)| k).collect::<Vec<_>>(), vec![b]);
    }
}
