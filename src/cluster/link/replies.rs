//! Redis's frames matched to the requests waiting, one function per kind of reply: pushes,
//! error replies, and each request's answer turned into events (or a broken link).

use std::ops::Range;
use std::rc::Rc;

use log::warn;

use super::ClusterLink;
use super::error::{LinkError, Shape};
use super::requests::Request;
use crate::cluster::events::{Claimed, Event, Undelivered, Who};
use crate::cluster::resp::{Frame, Reply};
use crate::cluster::route_batch::RouteBatch;

impl ClusterLink {
    /// A frame decoded at `base` of the input: a push, or the answer to the oldest request.
    pub(super) fn on_frame(&mut self, frame: Frame, base: usize) -> Result<(), LinkError> {
        let shape = Shape::of_frame(&frame);
        let reply = match frame {
            Frame::Push(parts) => {
                if !self.on_push(&parts, base) {
                    return Ok(());
                }
                None
            }
            Frame::Error(error) => {
                let request = self
                    .pending
                    .pop_front()
                    .ok_or(LinkError::Unawaited(shape))?;
                return self.on_error_reply(request, &error);
            }
            Frame::Reply(reply) => Some(reply),
        };
        let request = self
            .pending
            .pop_front()
            .ok_or(LinkError::Unawaited(shape))?;
        let reply = reply.as_ref();
        match request {
            Request::Hello | Request::Release | Request::Publish => Ok(()),
            Request::Role => match reply {
                Some(Reply::Strings(parts)) if self.input_at(base, &parts[0]) == b"master" => {
                    Ok(())
                }
                Some(Reply::Strings(parts)) => Err(LinkError::NotMaster(
                    String::from_utf8_lossy(self.input_at(base, &parts[0]))
                        .chars()
                        .take(32)
                        .collect(),
                )),
                _ => Err(unexpected(&request, reply)),
            },
            Request::Load(sha) => match reply {
                Some(Reply::Bytes(range)) if self.input_at(base, range) == sha.as_bytes() => Ok(()),
                _ => Err(unexpected(&request, reply)),
            },
            Request::Subscribe if reply.is_some() => Err(unexpected(&request, reply)),
            Request::Subscribe => Ok(()),
            Request::Hold {
                sent_at,
                has_names,
                first,
            } => match reply {
                Some(Reply::Integers(answer)) if answer.len() == 2 => {
                    self.on_hold_answer(sent_at, has_names && !first, answer[0], answer[1]);
                    Ok(())
                }
                _ => Err(unexpected(&request, reply)),
            },
            Request::Claim { ref names } => match reply {
                Some(Reply::Integers(outcomes)) if outcomes.len() == names.len() => {
                    self.on_claimed(names, outcomes);
                    Ok(())
                }
                _ => Err(unexpected(&request, reply)),
            },
            Request::Reclaim { ref names } => match reply {
                Some(Reply::Integers(outcomes)) if outcomes.len() == names.len() => {
                    self.on_reclaimed(names, outcomes);
                    Ok(())
                }
                _ => Err(unexpected(&request, reply)),
            },
            Request::Route(batch) => self.on_routed(batch, reply),
            Request::Leave => {
                self.state.on_left();
                Ok(())
            }
        }
    }

    /// A push: a channel message becomes [`Event::Records`]; other pushes (invalidations, and
    /// the like) are not for us. `true` if it is SUBSCRIBE's confirmation, its reply.
    fn on_push(&mut self, parts: &[Range<usize>], base: usize) -> bool {
        match parts.first().map(|kind| self.input_at(base, kind)) {
            Some(b"message") if parts.len() == 3 => {
                let payload = self.input_at(base, &parts[2]).to_vec();
                self.events.push(Event::Records(payload));
                false
            }
            Some(b"subscribe") => matches!(self.pending.front(), Some(Request::Subscribe)),
            _ => false,
        }
    }

    /// Redis answered `request` with `error`: the handshake's refusal breaks the link (Redis
    /// too old, wanting a password, or refusing ours); any other request's waiters hear "unavailable".
    fn on_error_reply(&mut self, request: Request, error: &str) -> Result<(), LinkError> {
        // Redis may echo a command's arguments in its error (an old one refusing HELLO does).
        let error = &self.scrubbed(error);
        if matches!(request, Request::Role) {
            return Err(LinkError::RoleRefused(error.chars().take(200).collect()));
        }
        if matches!(request, Request::Hello | Request::Load(_)) {
            if error.starts_with("NOAUTH") {
                return Err(LinkError::NoAuth);
            }
            if error.starts_with("WRONGPASS") || error.starts_with("NOPERM") {
                return Err(LinkError::Refused {
                    user: self.user().unwrap_or("default").to_string(),
                    error: error.to_string(),
                });
            }
            return Err(LinkError::TooOld {
                request: request.to_string(),
                error: error.to_string(),
            });
        }
        warn!("cluster: Redis answered {request} with an error: {error}");
        if matches!(request, Request::Route(_)) {
            self.routes_in_flight = self.routes_in_flight.saturating_sub(1);
        }
        self.fail(request);
        Ok(())
    }

    /// The claims of logins answered: one [`Event::Claim`] each.
    fn on_claimed(&mut self, names: &[(Who, Rc<str>)], outcomes: &[i64]) {
        for ((who, name), &outcome) in names.iter().zip(outcomes) {
            let outcome = match outcome {
                1 => Claimed::Yes,
                0 => Claimed::Taken,
                _ => Claimed::Unavailable,
            };
            self.events.push(Event::Claim {
                who: *who,
                name: name.clone(),
                outcome,
            });
        }
    }

    /// The reclaims answered: a name another node holds now is [`Event::NameLost`].
    fn on_reclaimed(&mut self, names: &[(Who, Rc<str>)], outcomes: &[i64]) {
        for ((who, name), &outcome) in names.iter().zip(outcomes) {
            if outcome == 0 {
                self.events.push(Event::NameLost {
                    who: *who,
                    name: name.clone(),
                });
            }
        }
    }

    /// A route batch answered: one status per destination, or one for all (the records went
    /// to one node together). A reply of the wrong shape breaks the link, and its senders are
    /// told, as for a connection lost with it in flight.
    fn on_routed(&mut self, batch: RouteBatch, reply: Option<&Reply>) -> Result<(), LinkError> {
        self.routes_in_flight = self.routes_in_flight.saturating_sub(1);
        let outcomes = match reply {
            Some(Reply::Integers(outcomes))
                if outcomes.len() == 1 || outcomes.len() == batch.dest_count() =>
            {
                outcomes
            }
            _ => {
                let request = Request::Route(batch);
                let error = unexpected(&request, reply);
                self.fail(request);
                return Err(error);
            }
        };
        for (i, (who, dest)) in batch.dests().enumerate() {
            let outcome = match outcomes[if outcomes.len() == 1 { 0 } else { i }] {
                1 => {
                    self.stats.messages_sent += 1;
                    continue;
                }
                0 => Undelivered::NoSuchPeer,
                _ => Undelivered::Unavailable,
            };
            self.events.push(Event::Route {
                who,
                dest: dest.into(),
                outcome,
            });
        }
        self.answered(&batch);
        Ok(())
    }

    /// A request that will get no answer: its waiters hear "unavailable".
    pub(super) fn fail(&mut self, request: Request) {
        match request {
            Request::Claim { names } => {
                for (who, name) in names {
                    self.events.push(Event::Claim {
                        who,
                        name,
                        outcome: Claimed::Unavailable,
                    });
                }
            }
            Request::Route(batch) => {
                for (who, dest) in batch.dests() {
                    self.events.push(Event::Route {
                        who,
                        dest: dest.into(),
                        outcome: Undelivered::Unavailable,
                    });
                }
                self.answered(&batch);
            }
            _ => {}
        }
    }

    /// Every destination of `batch` is answered: one [`Event::Answered`] per run of
    /// destinations of one sender.
    fn answered(&mut self, batch: &RouteBatch) {
        let mut run: Option<(Who, usize)> = None;
        for who in batch.senders() {
            match &mut run {
                Some((last, count)) if *last == who => *count += 1,
                _ => {
                    if let Some((who, count)) = run.replace((who, 1)) {
                        self.events.push(Event::Answered { who, count });
                    }
                }
            }
        }
        if let Some((who, count)) = run {
            self.events.push(Event::Answered { who, count });
        }
    }
}

/// A reply of the wrong shape for `request`.
fn unexpected(request: &Request, reply: Option<&Reply>) -> LinkError {
    LinkError::Unexpected {
        request: request.to_string(),
        reply: Shape::of(reply),
    }
}
