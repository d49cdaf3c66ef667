-- The patient a record is about: the invitation they came in with. A consultation may see
-- several patients (one after another from its waiting room), and a patient may read only their
-- own reports and prescriptions, in the room and on their outcome page. NULL for notes that
-- concern no one patient and for records made before this column existed.
ALTER TABLE records ADD COLUMN subject_invite TEXT;
