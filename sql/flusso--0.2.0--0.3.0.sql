-- flusso 0.2.0 -> 0.3.0: flusso._object(), the faster json_build_object()
-- the generated statements build their objects with.

\echo Use "ALTER EXTENSION flusso UPDATE TO '0.3.0'" to load this file. \quit

-- what json_build_object(key, value, ...) returns, byte for byte; the
-- generated document statements call it (they fall back to
-- json_build_object() while this function is missing)
CREATE FUNCTION @extschema@._object(VARIADIC "any")
RETURNS json
LANGUAGE C STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'flusso_object';
COMMENT ON FUNCTION @extschema@._object("any") IS
    'json_build_object() for the generated document statements, with its type lookups done once per call site';
-- and an object with no fields, as json_build_object() has one
CREATE FUNCTION @extschema@._object()
RETURNS json
LANGUAGE C STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'flusso_object';
COMMENT ON FUNCTION @extschema@._object() IS 'the empty object, {}';
