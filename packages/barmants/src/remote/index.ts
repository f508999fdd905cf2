// Remote recovery over SSH with ssh2: `--remote-ssh-command` parsing, known_hosts verification,
// connections, and the tar-streamed restore into a remote directory.
export { parseSshCommand, type SshTarget } from './ssh-command.js';
export { verifyHostKey, knownKeyTypes, fingerprint, keyType, knownHostsName, type HostKeyVerdict } from './known-hosts.js';
export { connectSsh, type SshSession, type ConnectOptions } from './connect.js';
export { recoverRemote, remoteCheckScript, interpretRemoteCheck } from './recover.js';
