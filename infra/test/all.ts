// One process for every assertion file, so that they share one synthesized app (see helpers.synthDefault).
import './config.test';
import './edge.test';
import './dns.test';
import './regional.test';
import './nag.test';
