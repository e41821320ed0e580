-- pgbench script of the live-throughput phase: one transaction updates 5 root rows
-- (users.name) and 5 grandchild rows (order_items.qty) of random documents.
-- Variables: -D n=USERS -D items=ORDER_ITEMS
\set u1 random(1, :n)
\set u2 random(1, :n)
\set u3 random(1, :n)
\set u4 random(1, :n)
\set u5 random(1, :n)
\set i1 random(1, :items)
\set i2 random(1, :items)
\set i3 random(1, :items)
\set i4 random(1, :items)
\set i5 random(1, :items)
BEGIN;
UPDATE users SET name = 'L' || :u1 || '-' || (random() * 1e9)::int WHERE id = :u1;
UPDATE users SET name = 'L' || :u2 || '-' || (random() * 1e9)::int WHERE id = :u2;
UPDATE users SET name = 'L' || :u3 || '-' || (random() * 1e9)::int WHERE id = :u3;
UPDATE users SET name = 'L' || :u4 || '-' || (random() * 1e9)::int WHERE id = :u4;
UPDATE users SET name = 'L' || :u5 || '-' || (random() * 1e9)::int WHERE id = :u5;
UPDATE order_items SET qty = qty + 1 WHERE id = :i1;
UPDATE order_items SET qty = qty + 1 WHERE id = :i2;
UPDATE order_items SET qty = qty + 1 WHERE id = :i3;
UPDATE order_items SET qty = qty + 1 WHERE id = :i4;
UPDATE order_items SET qty = qty + 1 WHERE id = :i5;
END;
