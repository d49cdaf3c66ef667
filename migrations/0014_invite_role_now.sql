-- The role the care team last gave whoever came with a link invitation, during the consultation
-- (an observer let speak becomes a guest, a guest made to only watch an observer): a later join
-- with that invitation, from another tab or device, comes in with it rather than the role the
-- invitation was made for. NULL: never changed. The invitation's own `role` stays what its
-- token names.
ALTER TABLE invites ADD COLUMN role_now TEXT;
