#!/usr/bin/env node
// Writes a submission CSV from a trained checkpoint; `node bin/predict.js --help` lists the options.
'use strict';

require('./launch')('predict');
