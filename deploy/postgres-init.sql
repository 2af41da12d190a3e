-- A database and role for qledger's event store. The eventsourcing library creates its
-- tables (qledger_events) on first start.
CREATE ROLE qledger LOGIN;
CREATE DATABASE qledger OWNER qledger;
