// `/`: the dashboard or the steward app, by who is logged in.
import { session, homeFor } from './session.js';

const s = session();
location.replace(s ? homeFor(s.role) : '/login');
