#!/usr/bin/env node
// Exports a trained checkpoint as one TorchScript file; `node bin/export-model.js --help` lists the options.
'use strict';

require('./launch')('export-model');
