// libpq connection strings for the configuration: the parser lives in pg-replication (one
// implementation for the library and the config loader); config errors add file:line around it.
export { parseConninfo, maskConninfo, formatConninfo, quoteConninfoValue, ConninfoSyntaxError } from 'pg-replication/conninfo';
