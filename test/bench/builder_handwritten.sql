-- The best hand-written single statement we know for the documents of
-- test/bench/users_index.json: every child level is one grouped aggregate
-- over its whole table, joined to the users by key, and the order count and
-- total share one scan of orders.  The builder benchmark compares flusso's
-- generated statements with it, document for document.
SELECT u.id::text AS id,
       json_build_object(
           'id', u.id,
           'name', u.name,
           'email', u.email,
           'signup_day', (u.created_at::date),
           'addresses', COALESCE(a.d, '[]'::json),
           'orders', COALESCE(o.d, '[]'::json),
           'company', c.d,
           'tags', COALESCE(t.d, '[]'::json),
           'order_count', COALESCE(s.n, 0),
           'total_spent', COALESCE(s.total, 0))::text AS doc
  FROM users u
  LEFT JOIN (SELECT user_id, json_agg(json_build_object('city', city, 'zip', zip, 'street', street) ORDER BY id) AS d
               FROM addresses GROUP BY user_id) a ON a.user_id = u.id
  LEFT JOIN (SELECT o.user_id,
                    json_agg(json_build_object('id', o.id, 'total', o.total, 'status', o.status,
                                               'created_at', o.created_at, 'items', COALESCE(i.d, '[]'::json))
                             ORDER BY o.created_at DESC) AS d
               FROM orders o
               LEFT JOIN (SELECT order_id, json_agg(json_build_object('sku', sku, 'qty', qty, 'price', price) ORDER BY id) AS d
                            FROM order_items GROUP BY order_id) i ON i.order_id = o.id
              GROUP BY o.user_id) o ON o.user_id = u.id
  LEFT JOIN (SELECT id, json_build_object('name', name, 'country', country) AS d FROM companies) c ON c.id = u.company_id
  LEFT JOIN (SELECT ut.user_id, json_agg(t.name ORDER BY t.name) AS d
               FROM user_tags ut JOIN tags t ON t.id = ut.tag_id GROUP BY ut.user_id) t ON t.user_id = u.id
  LEFT JOIN (SELECT user_id, count(*) AS n, sum(total) FILTER (WHERE status <> 'cancelled') AS total
               FROM orders GROUP BY user_id) s ON s.user_id = u.id
 WHERE u.deleted_at IS NULL
