/** DDL of the demo `business` schema. Amounts are numeric(12,2); dates are calendar dates. */
export const DEMO_SCHEMA_VERSION = 1;

export const businessDdl = `
create schema if not exists business;
create table if not exists business.demo_meta (
  key text primary key,
  value jsonb not null
);
create table business.customers (
  id integer primary key,
  name text not null,
  email text not null unique,
  segment text not null check (segment in ('smb', 'mid_market', 'enterprise')),
  region text not null,
  signup_date date not null
);
create table business.subscriptions (
  id integer primary key,
  customer_id integer not null references business.customers(id),
  plan text not null,
  seats integer not null,
  price_per_seat numeric(10,2) not null,
  started_on date not null,
  ended_on date
);
create table business.orders (
  id integer primary key,
  customer_id integer not null references business.customers(id),
  order_date date not null,
  amount numeric(12,2) not null,
  kind text not null check (kind in ('subscription', 'usage', 'addon', 'services'))
);
create index on business.orders (order_date);
create index on business.orders (customer_id);
create table business.usage_monthly (
  customer_id integer not null references business.customers(id),
  month date not null,
  active_users integer not null,
  api_calls bigint not null,
  primary key (customer_id, month)
);
create table business.tickets (
  id integer primary key,
  customer_id integer not null references business.customers(id),
  subject text not null,
  body text not null,
  category text not null,
  created_at timestamptz not null,
  resolved_at timestamptz,
  satisfaction smallint check (satisfaction between 1 and 5)
);
create index on business.tickets (created_at);
create table business.staff (
  id integer primary key,
  name text not null,
  skills text[] not null,
  max_hours_week integer not null,
  hourly_cost numeric(8,2) not null
);
create table business.shifts (
  id integer primary key,
  day date not null,
  slot text not null,
  starts_at time not null,
  hours integer not null,
  required_skill text not null,
  headcount integer not null
);
create table business.availability (
  staff_id integer not null references business.staff(id),
  day date not null,
  slot text not null,
  primary key (staff_id, day, slot)
);
create table business.cost_lines (
  id integer primary key,
  category text not null,
  month date not null,
  amount numeric(12,2) not null,
  unique (category, month)
);
`;
