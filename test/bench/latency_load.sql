-- pgbench script of the latency phases' background load: one commit changes
-- one row, a root row (users.name) or a grandchild row (order_items.qty).
-- Variables: -D n=USERS (users 1..n are used; the probe's users lie above) -D items=ORDER_ITEMS
\set r random(1, 2)
\set u random(1, :n)
\set i random(1, :items)
\if :r = 1
UPDATE users SET name = 'B' || :u || '-' || (random() * 1e9)::int WHERE id = :u;
\else
UPDATE order_items SET qty = qty + 1 WHERE id = :i;
\endif
